-- step_journal.outcome is a closed list (store::Outcome): say so where SQL users look.
COMMENT ON COLUMN step_journal.outcome IS
    'started | ok | retry | ambiguous | rate_limited | failed | callback | ignored | woken | interrupted | command | command_refused | cancelled (store::Outcome documents each).';
