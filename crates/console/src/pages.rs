//! The console's pages, rendered on the server with maud: one layout, one stylesheet, no
//! script. Every JSON value shown goes through `mask` unless the user may see personal
//! data; every form carries the session's CSRF token.

use chrono::{DateTime, TimeDelta, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use store::{
    CommandRequest, DeliveryRow, EventRow, FindingRow, Funnel, GovernorRow, JournalRow,
    MatchedEvent, OperatorCommand, Rates, RequestStatus, StatusCount, StuckWorkflow, WaitRow,
    WorkerSeen, Workflow,
};

use crate::app::{EventsQuery, FilterQuery};
use crate::auth::User;
use crate::config::Role;
use crate::mask;
use crate::operate::Command;

/// The stylesheet, served at `/assets/console.css`.
pub const STYLESHEET: &str = include_str!("../assets/console.css");

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn time_opt(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "—".to_owned())
}

/// A JSON value as a page shows it: masked, whoever looks (personal data is read in the
/// clear only through a journaled reveal).
fn shown(value: &Value) -> String {
    serde_json::to_string_pretty(&mask::json(value)).unwrap_or_default()
}

fn layout(user: Option<&User>, title: &str, notice: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · finflow console" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header.top {
                    a.brand href="/" { "finflow" }
                    @if let Some(user) = user {
                        nav {
                            a href="/" { "Overview" }
                            a href="/workflows" { "Workflows" }
                            a href="/commands" { "Commands" }
                            a href="/reconciliation" { "Reconciliation" }
                            a href="/events" { "Events" }
                            a href="/webhooks" { "Webhooks" }
                        }
                        form.signout method="post" action="/logout" {
                            span.who { (user.name) " · " (user.role.as_str()) }
                            input type="hidden" name="csrf" value=(user.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    @if let Some(notice) = notice {
                        p.notice.refused[notice.starts_with("refused")] role="status" id="notice" { (notice) }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The sign-in page.
pub fn login(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        None,
        "Sign in",
        error.map(|e| format!("refused: {e}")).as_deref(),
        html! {
            form.login method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Name" input name="name" autocomplete="username" required; }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A refusal (wrong role, bad CSRF token, unknown workflow).
pub fn refusal(user: &User, why: &str) -> Markup {
    layout(
        Some(user),
        "Refused",
        None,
        html! { p.refused id="refusal" { (why) } },
    )
}

/// A failure the person cannot fix.
pub fn failure(why: &str) -> Markup {
    layout(
        None,
        "Something went wrong",
        None,
        html! { p.refused { (why) } },
    )
}

fn workflow_link(id: uuid::Uuid, label: &str) -> Markup {
    html! { a href=(format!("/workflows/{id}")) { (label) } }
}

fn status_badge(status: &str) -> Markup {
    html! { span class=(format!("badge s-{status}")) { (status) } }
}

/// What the overview shows.
pub struct Overview<'a> {
    pub user: &'a User,
    pub notice: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub counts: &'a [StatusCount],
    pub stuck: &'a [StuckWorkflow],
    pub stuck_total: i64,
    pub pending: &'a [CommandRequest],
    pub funnel: &'a Funnel,
    pub rates: &'a Rates,
    pub workers: &'a [WorkerSeen],
    pub governor: &'a [GovernorRow],
}

/// A small bar chart of the last 60 minutes, one bar a minute.
fn chart(title: &str, data: &[(String, i64)], now: DateTime<Utc>) -> Markup {
    const W: i64 = 240;
    const H: i64 = 48;
    let minutes: Vec<String> = (0..60)
        .rev()
        .map(|i| {
            (now - TimeDelta::minutes(i))
                .format("%Y-%m-%dT%H:%M")
                .to_string()
        })
        .collect();
    let count = |m: &str| data.iter().find(|(k, _)| k == m).map_or(0, |(_, n)| *n);
    let values: Vec<i64> = minutes.iter().map(|m| count(m)).collect();
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let last = values.last().copied().unwrap_or(0);
    let total: i64 = values.iter().sum();
    let mut bars = String::new();
    for (i, v) in values.iter().enumerate() {
        let h = v * (H - 2) / max;
        let x = i64::try_from(i).unwrap_or(0) * (W / 60);
        bars.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"3\" height=\"{h}\"></rect>",
            H - h
        ));
    }
    html! {
        figure.chart {
            figcaption { (title) ": " strong { (last) } " this minute, " (total) " in the last hour (max " (max) "/min)" }
            svg width=(W) height=(H) viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
                (PreEscaped(bars))
            }
        }
    }
}

/// The overview page.
pub fn overview(o: &Overview<'_>) -> Markup {
    let mut kinds: Vec<&str> = o.counts.iter().map(|c| c.kind.as_str()).collect();
    kinds.dedup();
    let body = html! {
        section {
            h2 { "Waiting for approval (" (o.pending.len()) ")" }
            (requests_table(o.user, o.pending, true))
        }
        section {
            h2 { "Needs a look: " (o.stuck_total) " stuck" }
            p.hint { "needs_attention: a person must resolve or cancel; overdue: due but not picked up; lease_expired: its worker stopped mid-step." }
            table id="stuck" {
                thead { tr { th { "workflow" } th { "kind" } th { "state" } th { "reason" } th { "since" } th { "last error" } } }
                tbody {
                    @for s in o.stuck {
                        tr {
                            td { (workflow_link(s.id, &s.business_key)) }
                            td { (s.kind) }
                            td { (s.state) }
                            td { span.reason { (s.reason) } }
                            td { (time(s.since)) }
                            td.err { (s.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            p { a href="/workflows?status=needs_attention" { "All that need attention →" } }
        }
        section {
            h2 { "Counts by kind, state and status" }
            table {
                thead { tr { th { "kind" } th { "state" } th { "status" } th.num { "count" } } }
                tbody {
                    @for c in o.counts {
                        tr {
                            td { (c.kind) }
                            td { a href=(format!("/workflows?kind={}&state={}", c.kind, c.state)) { (c.state) } }
                            td { (status_badge(c.status.as_str())) }
                            td.num { (c.count) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Last 24 hours" }
            ol.funnel {
                li { "submitted " strong { (o.funnel.submitted) } }
                li { "onboarded " strong { (o.funnel.onboarded) } }
                li { "signed " strong { (o.funnel.signed) } }
                li { "disbursed " strong { (o.funnel.disbursed) } }
                li { "paid " strong { (o.funnel.paid) } }
            }
            div.charts {
                (chart("steps/min", &o.rates.steps, o.now))
                (chart("429s/min", &o.rates.rate_limited, o.now))
                (chart("callbacks/min", &o.rates.callbacks, o.now))
            }
        }
        section {
            h2 { "Fleet" }
            table {
                thead { tr { th { "worker" } th { "last heartbeat" } th.num { "steps, last 5 minutes" } } }
                tbody {
                    @for w in o.workers {
                        tr { td { (w.worker_id) } td { (time_opt(w.last_seen)) } td.num { (w.steps) } }
                    }
                    @if o.workers.is_empty() { tr { td colspan="3" { "no worker ran in the last 24 hours" } } }
                }
            }
            h3 { "Rate governor" }
            table {
                thead { tr { th { "scope" } th { "paused until" } th.num { "tokens" } } }
                tbody {
                    @for g in o.governor {
                        tr {
                            td { (g.scope) }
                            td {
                                @if g.paused_until.is_some_and(|p| p > o.now) { strong.refused { "paused until " (time_opt(g.paused_until)) } }
                                @else { "running" }
                            }
                            td.num { (g.tokens.map(|t| format!("{t:.1}")).unwrap_or_default()) }
                        }
                    }
                    @if o.governor.is_empty() { tr { td colspan="3" { "no request to Finfra yet" } } }
                }
            }
        }
    };
    layout(Some(o.user), "Overview", o.notice, body)
}

fn requests_table(user: &User, requests: &[CommandRequest], forms: bool) -> Markup {
    html! {
        table.requests {
            thead { tr { th { "#" } th { "workflow" } th { "command" } th { "asked by" } th { "why" } th { "needs approval because" } th { "asked" } th { "status" } th { "decided by" } @if forms { th { "decide" } } } }
            tbody {
                @for r in requests {
                    tr id=(format!("request-{}", r.id)) {
                        td { (r.id) }
                        td { (workflow_link(r.workflow_id, &r.business_key)) br; small { (r.kind) } }
                        td { (label(&r.title, &r.payload)) }
                        td { (r.requested_by) }
                        td { (r.reason) }
                        td { (r.needs_approval) }
                        td { (time(r.requested_at)) br; small { "expires " (time(r.expires_at)) } }
                        td { span class=(format!("badge r-{}", r.status)) { (r.status.as_str()) } }
                        td {
                            (r.decided_by.as_deref().unwrap_or(""))
                            @if let Some(why) = &r.decided_reason { br; small { (why) } }
                        }
                        @if forms {
                            td { (decide_forms(user, r)) }
                        }
                    }
                }
                @if requests.is_empty() { tr { td colspan="10" { "none" } } }
            }
        }
    }
}

fn label(title: &str, payload: &Value) -> String {
    Command::from_stored(title, payload).map_or_else(|| title.to_owned(), |c| c.label().to_owned())
}

fn decide_forms(user: &User, r: &CommandRequest) -> Markup {
    html! {
        @if r.status != RequestStatus::Pending {
        } @else if !user.can(Role::Approver) {
            small { "an approver decides" }
        } @else if r.requested_by == user.name {
            small { "your own request: another approver decides" }
        } @else {
            form.decide method="post" action=(format!("/commands/{}/approve", r.id)) {
                input type="hidden" name="csrf" value=(user.csrf);
                input name="reason" placeholder="why (required)" required;
                button type="submit" name="approve" { "Approve" }
            }
            form.decide method="post" action=(format!("/commands/{}/reject", r.id)) {
                input type="hidden" name="csrf" value=(user.csrf);
                input name="reason" placeholder="why (required)" required;
                button.secondary type="submit" name="reject" { "Reject" }
            }
        }
    }
}

/// The workflow table.
pub fn workflows(
    user: &User,
    q: &FilterQuery,
    rows: &[Workflow],
    next: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    let filter_qs = q.with_after("");
    let body = html! {
        form.filters method="get" action="/workflows" {
            label { "kind" select name="kind" {
                option value="" { "any" }
                @for k in ["onboard-borrower", "originate-loan"] { option value=(k) selected[q.kind == k] { (k) } }
            } }
            label { "status" select name="status" {
                option value="" { "any" }
                @for s in store::Status::ALL { option value=(s.as_str()) selected[q.status == s.as_str()] { (s.as_str()) } }
            } }
            label { "state" input name="state" value=(q.state); }
            label { "definition" input name="definition" value=(q.definition); }
            label { "created from" input name="created_from" placeholder="YYYY-MM-DD" value=(q.created_from); }
            label { "created to" input name="created_to" placeholder="YYYY-MM-DD" value=(q.created_to); }
            label { "updated from" input name="updated_from" placeholder="YYYY-MM-DD" value=(q.updated_from); }
            label { "updated to" input name="updated_to" placeholder="YYYY-MM-DD" value=(q.updated_to); }
            label { "business key starts with" input name="key" value=(q.key); }
            label { "Finfra user id" input name="user_id" value=(q.user_id); }
            label { "loan unique id" input name="loan" value=(q.loan); }
            label { "NIK, last 4 digits" input name="nik" size="4" maxlength="4" value=(q.nik); }
            button type="submit" { "Filter" }
            a href="/workflows" { "clear" }
        }
        table id="workflows" {
            thead { tr { th { "business key" } th { "kind" } th { "status" } th { "state" } th { "definition" } th { "attempt" } th { "created" } th { "updated" } th { "last error" } } }
            tbody {
                @for w in rows {
                    tr {
                        td { (workflow_link(w.id, &w.business_key)) }
                        td { (w.kind) }
                        td { (status_badge(w.status.as_str())) }
                        td { (w.state) }
                        td { (w.definition_name) @if let Some(v) = w.definition_version { " v" (v) } }
                        td.num { (w.attempt) }
                        td { (time(w.created_at)) }
                        td { (time(w.updated_at)) }
                        td.err { (w.last_error.as_deref().unwrap_or("")) }
                    }
                }
                @if rows.is_empty() { tr { td colspan="9" { "no workflow matches" } } }
            }
        }
        p.pager {
            @if !q.after.is_empty() { a href=(format!("/workflows?{filter_qs}")) { "← first page" } " " }
            @if let Some(next) = next { a id="next" href=(format!("/workflows?{}", q.with_after(next))) { "next page →" } }
        }
        @if user.can(Role::Operator) {
            details.bulk {
                summary { "Bulk action on everything this filter matches, or on the ids you list" }
                form method="post" action="/workflows/bulk" {
                    input type="hidden" name="csrf" value=(user.csrf);
                    input type="hidden" name="filter" value=(filter_qs);
                    label { "action" select name="action" { option value="retry" { "retry" } option value="cancel" { "cancel" } } }
                    label { "ids (optional, comma separated)" input name="ids"; }
                    label { "reason" input name="reason" required; }
                    button type="submit" { "Count and confirm…" }
                }
            }
        }
    };
    layout(Some(user), "Workflows", notice, body)
}

/// The count of a bulk action, to confirm.
pub fn bulk_confirm(
    user: &User,
    command: &Command,
    reason: &str,
    filter: &str,
    ids: &str,
    targets: &[Workflow],
) -> Markup {
    let body = html! {
        p { "The " strong { (command.label()) } " would be asked for " strong id="bulk-count" { (targets.len()) } " workflows (each is checked by its own state machine; those that need approval wait for a second person)." }
        ul { @for w in targets.iter().take(20) { li { (workflow_link(w.id, &w.business_key)) " " (w.state) } } @if targets.len() > 20 { li { "…" } } }
        form method="post" action="/workflows/bulk" {
            input type="hidden" name="csrf" value=(user.csrf);
            input type="hidden" name="filter" value=(filter);
            input type="hidden" name="ids" value=(ids);
            input type="hidden" name="action" value=(command.label());
            input type="hidden" name="reason" value=(reason);
            input type="hidden" name="confirmed" value=(targets.len());
            button type="submit" { "Confirm " (command.label()) " of " (targets.len()) }
            " " a href=(format!("/workflows?{filter}")) { "cancel" }
        }
    };
    layout(Some(user), "Confirm a bulk action", None, body)
}

/// One action on the workflow page: what the state machine says about it now.
pub struct Action {
    pub command: Command,
    /// `Ok(Some(why))`: accepted, needs approval; `Ok(None)`: accepted; `Err`: refused.
    pub verdict: Result<Option<String>, String>,
    pub four_eyes: bool,
}

/// What the workflow page shows.
pub struct OneWorkflow<'a> {
    pub user: &'a User,
    pub notice: Option<&'a str>,
    pub workflow: &'a Workflow,
    pub journal: &'a [JournalRow],
    pub waits: &'a [WaitRow],
    pub events: &'a [MatchedEvent],
    /// Its lifecycle events (the feed's rows).
    pub lifecycle: &'a [EventRow],
    pub requests: &'a [CommandRequest],
    pub linked: &'a [Workflow],
    pub actions: &'a [Action],
    /// The input in the clear, when a user allowed to asked with a reason (journaled).
    pub revealed: Option<&'a serde_json::Value>,
}

/// The workflow page.
pub fn workflow(p: &OneWorkflow<'_>) -> Markup {
    let w = p.workflow;
    let user = p.user;
    let loan = w.context.get("loan");
    let body = html! {
        dl.header {
            dt { "id" } dd { code { (w.id) } }
            dt { "kind" } dd { (w.kind) }
            dt { "status" } dd id="status" { (status_badge(w.status.as_str())) }
            dt { "state" } dd id="state" { (w.state) }
            dt { "attempt" } dd { (w.attempt) }
            dt { "definition" } dd { (w.definition_name) @if let Some(v) = w.definition_version { " v" (v) } }
            dt { "lease" } dd { (w.lease_owner.as_deref().unwrap_or("—")) " until " (time_opt(w.lease_until)) }
            dt { "next run" } dd { (time_opt(w.next_run_at)) }
            dt { "deadline" } dd { (time_opt(w.deadline)) }
            dt { "waits for" } dd { (w.waiting_for.as_deref().unwrap_or("—")) }
            dt { "last error" } dd.err { (w.last_error.as_deref().unwrap_or("—")) }
            dt { "created" } dd { (time(w.created_at)) " · updated " (time(w.updated_at)) " · finished " (time_opt(w.finished_at)) }
        }
        section {
            h2 { "Actions it accepts now" }
            @if !user.can(Role::Operator) {
                p.hint { "Your role (" (user.role.as_str()) ") reads only." }
            }
            div.actions {
                @for a in p.actions {
                    div.action {
                        h3 { (a.command.label()) }
                        @match &a.verdict {
                            Err(why) => { p.hint { "not now: " (why) } }
                            Ok(approval) => {
                                @if let Some(why) = approval { @if a.four_eyes { p.fouryes { "four-eyes: " (why) "; a second person approves it" } } }
                                @if user.can(Role::Operator) {
                                    form method="post" action=(format!("/workflows/{}/command", w.id)) {
                                        input type="hidden" name="csrf" value=(user.csrf);
                                        input type="hidden" name="action" value=(a.command.label());
                                        @if matches!(a.command, Command::Resolve(None)) {
                                            label { "data (JSON)" input name="data" placeholder="{\"user_id\": \"...\"}"; }
                                        }
                                        label { "reason" input name="reason" required; }
                                        button type="submit" name=(a.command.label()) { (a.command.label()) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Commands waiting for approval or decided" }
            (requests_table(user, p.requests, true))
        }
        section {
            h2 { "Timeline" }
            table id="timeline" {
                thead { tr { th { "#" } th { "time" } th { "step" } th { "action" } th { "outcome" } th { "Finfra" } th.num { "ms" } th { "error" } th { "details" } } }
                tbody {
                    @for j in p.journal {
                        tr class=(format!("o-{}", j.entry.outcome)) {
                            td { (j.seq) }
                            td { (time(j.entry.finished_at)) }
                            td { (j.entry.step) }
                            td { (j.entry.action) }
                            td { (j.entry.outcome.as_str()) }
                            td { (j.entry.finfra_status.map(|s| s.to_string()).unwrap_or_default()) }
                            td.num { (j.duration_ms) }
                            td.err { (j.entry.error.as_deref().unwrap_or("")) }
                            td {
                                @if j.entry.request_summary.is_some() || j.entry.response_summary.is_some() {
                                    details {
                                        summary { "request / response" }
                                        @if let Some(r) = &j.entry.request_summary { pre { (shown(r)) } }
                                        @if let Some(r) = &j.entry.response_summary { pre { (shown(r)) } }
                                        small { "worker " (j.worker_id) @if let Some(k) = &j.entry.operation_key { " · operation " (k) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "What it waits for" }
            ul {
                @for wait in p.waits {
                    li { (wait.event) " with " (wait.key_name.as_str()) " = "
                        @if wait.key_name == store::CorrelationKey::IdentityNumber { (mask::last_four(&wait.key_value)) } @else { (wait.key_value) }
                        " (since " (time(wait.created_at)) ")" }
                }
                @if p.waits.is_empty() { li { "nothing" } }
            }
        }
        section {
            h2 { "Inbox events" }
            table {
                thead { tr { th { "#" } th { "source" } th { "title" } th { "received" } th { "processed" } th { "payload" } } }
                tbody {
                    @for e in p.events {
                        tr {
                            td { (e.id) } td { (e.source.as_str()) } td { (e.title) }
                            td { (time(e.received_at)) } td { (time_opt(e.processed_at)) }
                            td { details { summary { "show" } pre { (shown(&e.payload)) } } }
                        }
                    }
                    @if p.events.is_empty() { tr { td colspan="6" { "none" } } }
                }
            }
        }
        section {
            h2 { "Lifecycle events" }
            (events_table(p.lifecycle, false))
        }
        @if let Some(loan) = loan {
            section id="loan" {
                h2 { "Installments and payments" }
                @if let Some(schedule) = loan.get("schedule").and_then(Value::as_array) {
                    (json_table(schedule))
                }
                @if let Some(repayment) = loan.get("repayment") {
                    details open { summary { "repayments" } pre { (shown(repayment)) } }
                }
            }
        }
        section {
            h2 { "Facts" }
            pre { (shown(&w.facts)) }
            details { summary { "input (masked)" } pre { (serde_json::to_string_pretty(&mask::json(&w.input)).unwrap_or_default()) } }
            @if let Some(input) = p.revealed {
                details open id="revealed" { summary { "input, revealed (journaled: who, why, when)" } pre { (serde_json::to_string_pretty(input).unwrap_or_default()) } }
            } @else if user.personal_data && w.input.get("erased").is_none() {
                form method="get" action=(format!("/workflows/{}", w.id)) {
                    label { "reason " input type="text" name="reveal" required placeholder="why you need the personal data"; }
                    button type="submit" { "Reveal personal data" }
                }
            }
        }
        section {
            h2 { @if w.kind == "onboard-borrower" { "Its loans" } @else { "Its onboarding" } }
            ul {
                @for l in p.linked { li { (workflow_link(l.id, &l.business_key)) " " (l.kind) " " (status_badge(l.status.as_str())) " " (l.state) } }
                @if p.linked.is_empty() { li { "none" } }
            }
        }
    };
    layout(
        Some(user),
        &format!("{} {}", w.kind, w.business_key),
        p.notice,
        body,
    )
}

/// An array of objects as a table, columns from the first object.
fn json_table(rows: &[Value]) -> Markup {
    let columns: Vec<String> = rows
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    html! {
        table {
            thead { tr { @for c in &columns { th { (c) } } } }
            tbody {
                @for row in rows {
                    @let row = mask::json(row);
                    tr { @for c in &columns { td { (row.get(c).map(|v| match v { Value::String(s) => s.clone(), other => other.to_string() }).unwrap_or_default()) } } }
                }
            }
        }
    }
}

/// The commands page.
pub fn commands(
    user: &User,
    notice: Option<&str>,
    requests: &[CommandRequest],
    queued: &[OperatorCommand],
) -> Markup {
    let body = html! {
        section {
            h2 { "Four-eyes requests" }
            (requests_table(user, requests, true))
        }
        section {
            h2 { "Commands queued for workflows" }
            table id="queued" {
                thead { tr { th { "inbox #" } th { "workflow" } th { "command" } th { "by" } th { "why" } th { "when" } th { "approved by" } th { "outcome" } } }
                tbody {
                    @for c in queued {
                        tr {
                            td { (c.inbox_id) }
                            td { (workflow_link(c.workflow_id, &c.business_key)) " " small { (c.kind) } }
                            td { (label(&c.title, &c.payload)) }
                            td { (c.payload.get("by").and_then(Value::as_str).unwrap_or("")) }
                            td { (c.payload.get("reason").and_then(Value::as_str).unwrap_or("")) }
                            td { (time(c.received_at)) }
                            td { (c.approved_by.as_deref().unwrap_or("—")) }
                            td.outcome {
                                @match (c.outcome.as_deref(), c.processed_at) {
                                    (Some("command"), _) => { span.badge.s-completed { "applied" } " " (time_opt(c.applied_at)) }
                                    (Some("command_refused"), _) => { span.badge.s-failed { "refused" } " " (c.error.as_deref().unwrap_or("")) }
                                    (Some(other), _) => { (other) }
                                    (None, Some(_)) => { "taken" }
                                    (None, None) => { "queued: waiting for a worker" }
                                }
                            }
                        }
                    }
                    @if queued.is_empty() { tr { td colspan="8" { "none" } } }
                }
            }
        }
    };
    layout(Some(user), "Commands", notice, body)
}

/// A table of lifecycle events; `workflows`: with a column linking to each one's workflow.
fn events_table(rows: &[EventRow], workflows: bool) -> Markup {
    html! {
        table.events {
            thead { tr { th { "#" } th { "occurred" } th { "type" } @if workflows { th { "workflow" } } th { "journal #" } th { "payload" } } }
            tbody {
                @for e in rows {
                    tr id=(format!("event-{}", e.id)) {
                        td { (e.id) }
                        td { (time(e.occurred_at)) }
                        td { code { (e.event_type) } }
                        @if workflows {
                            td {
                                @match (e.workflow_id, &e.business_key) {
                                    (Some(id), Some(key)) => { (workflow_link(id, key)) }
                                    (Some(id), None) => { (workflow_link(id, &id.to_string())) }
                                    (None, key) => { (key.as_deref().unwrap_or("—")) }
                                }
                                @if let Some(kind) = &e.kind { br; small { (kind) } }
                            }
                        }
                        td { (e.journal_seq.map(|s| s.to_string()).unwrap_or_default()) }
                        td { details { summary { "show" } pre { (shown(&e.payload)) } } }
                    }
                }
                @if rows.is_empty() { tr { td colspan="6" { "none" } } }
            }
        }
    }
}

/// What the Reconciliation page shows.
pub struct Reconciliation<'a> {
    pub user: &'a User,
    pub notice: Option<&'a str>,
    /// Resolved findings too.
    pub all: bool,
    /// The last runs, newest first.
    pub runs: &'a [Workflow],
    /// Open findings by kind: how many, how many about money (money ones first).
    pub by_kind: &'a [(String, i64, i64)],
    pub findings: &'a [FindingRow],
    /// The id to continue after, when there are more.
    pub next: Option<i64>,
}

/// A count from a run's facts.
fn fact(facts: &Value, key: &str) -> String {
    match facts.get(key) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "—".to_owned(),
    }
}

/// The Reconciliation page.
pub fn reconciliation(r: &Reconciliation<'_>) -> Markup {
    let user = r.user;
    let all = if r.all { "&all=1" } else { "" };
    let body = html! {
        p.hint { "Each run of reconcile-loans reads Finfra's books page by page and compares them with finflow's; a difference is a finding until a later run no longer sees it. Findings about money come first." }
        section {
            h2 { "Open findings by kind" }
            table id="by-kind" {
                thead { tr { th { "kind" } th.num { "open" } th.num { "about money" } } }
                tbody {
                    @for (kind, count, money) in r.by_kind {
                        tr.money[*money > 0] { td { (kind) } td.num { (count) } td.num { @if *money > 0 { strong.refused { (money) } } @else { (money) } } }
                    }
                    @if r.by_kind.is_empty() { tr { td colspan="3" { "no open finding" } } }
                }
            }
        }
        section {
            h2 { "Last runs" }
            @if user.can(Role::Operator) {
                form.filters id="start-run" method="post" action="/reconciliation/run" {
                    input type="hidden" name="csrf" value=(user.csrf);
                    label { "loans created from" input name="from" placeholder="YYYY-MM-DD"; }
                    label { "to" input name="to" placeholder="YYYY-MM-DD"; }
                    button type="submit" name="start" { "Start a run now" }
                }
            } @else {
                p.hint { "Your role (" (user.role.as_str()) ") reads only: an operator starts runs." }
            }
            table id="runs" {
                thead { tr { th { "run" } th { "status" } th { "state" } th.num { "pages" } th.num { "loans" } th.num { "findings" } th.num { "about money" } th { "started" } th { "finished" } } }
                tbody {
                    @for w in r.runs {
                        tr {
                            td { (workflow_link(w.id, &w.business_key)) }
                            td { (status_badge(w.status.as_str())) }
                            td { (w.state) }
                            td.num { (fact(&w.facts, "pages")) }
                            td.num { (fact(&w.facts, "loans")) }
                            td.num { (fact(&w.facts, "findings")) }
                            td.num { (fact(&w.facts, "money_findings")) }
                            td { (time(w.created_at)) }
                            td { (time_opt(w.finished_at)) }
                        }
                    }
                    @if r.runs.is_empty() { tr { td colspan="9" { "no run yet" } } }
                }
            }
        }
        section {
            h2 { @if r.all { "Findings, resolved too" } @else { "Open findings" } }
            p {
                @if r.all { a href="/reconciliation" { "Only open ones" } } @else { a href="/reconciliation?all=1" { "Resolved ones too" } }
            }
            table id="findings" {
                thead { tr { th { "#" } th { "loan" } th { "kind" } th { "finflow" } th { "Finfra" } th { "first seen" } th { "last seen" } th { "resolved" } th { "run" } } }
                tbody {
                    @for f in r.findings {
                        tr.money[f.money] id=(format!("finding-{}", f.id)) {
                            td { (f.id) }
                            td {
                                @if let Some(id) = f.workflow { (workflow_link(id, &f.loan_unique_id)) } @else { (f.loan_unique_id) }
                            }
                            td { (f.kind) @if f.money { " " span.badge.s-failed { "money" } } }
                            td { (f.finflow_value.as_deref().unwrap_or("—")) }
                            td { (f.finfra_value.as_deref().unwrap_or("—")) }
                            td { (time(f.first_seen_at)) }
                            td { (time(f.last_seen_at)) }
                            td { (time_opt(f.resolved_at)) }
                            td { (workflow_link(f.run, "run")) }
                        }
                    }
                    @if r.findings.is_empty() { tr { td colspan="9" { "none" } } }
                }
            }
            @if let Some(next) = r.next {
                p { a rel="next" href=(format!("/reconciliation?before={next}{all}")) { "Older findings →" } }
            }
        }
    };
    layout(Some(user), "Reconciliation", r.notice, body)
}

/// The Events page: the lifecycle feed, newest first.
pub fn events(
    user: &User,
    q: &EventsQuery,
    rows: &[EventRow],
    next: Option<i64>,
    notice: Option<&str>,
) -> Markup {
    let body = html! {
        p.hint { "What every workflow announced, as consumers read it with GET /events and webhooks receive it (see Webhooks)." }
        form.filters method="get" action="/events" {
            label { "type" select name="type" {
                option value="" { "any" }
                @for t in workflow::EventType::ALL { option value=(t.as_str()) selected[q.event_type == t.as_str()] { (t.as_str()) } }
            } }
            label { "business key starts with" input name="key" value=(q.key); }
            button type="submit" { "Filter" }
            a href="/events" { "clear" }
        }
        (events_table(rows, true))
        @if let Some(next) = next {
            p { a rel="next" href=(format!("/events?{}", q.with_before(&next.to_string()))) { "Older events →" } }
        }
    };
    layout(Some(user), "Events", notice, body)
}

/// The Webhooks page: deliveries of the feed to the configured webhooks.
pub fn webhooks(user: &User, notice: Option<&str>, failed: bool, rows: &[DeliveryRow]) -> Markup {
    let body = html! {
        p.hint { "Each event goes to every webhook that subscribes to its type; a failed delivery was given up after the webhook's retry period. A replay makes it due again with the same delivery id, as `finflow webhooks replay` does." }
        p {
            @if failed { a href="/webhooks" { "All deliveries" } } @else { a href="/webhooks?failed=1" { "Only the failed ones" } }
        }
        table id="deliveries" {
            thead { tr { th { "delivery" } th { "event" } th { "workflow" } th { "status" } th.num { "attempts" } th { "last answer" } th { "next attempt" } th { "created" } th { "delivered" } th { "replay" } } }
            tbody {
                @for d in rows {
                    tr id=(format!("delivery-{}", d.id)) {
                        td { code { (d.id) } br; small { (d.webhook) } }
                        td { (d.event_id) " " code { (d.event_type) } }
                        td { @if let Some(id) = d.workflow_id { (workflow_link(id, "workflow")) } @else { "—" } }
                        td { span class=(format!("badge d-{}", d.status.as_str())) { (d.status.as_str()) } }
                        td.num { (d.attempts) }
                        td.err { (d.last_status.map(|s| format!("HTTP {s} ")).unwrap_or_default()) (d.last_error.as_deref().unwrap_or("")) }
                        td { @if d.status == store::DeliveryStatus::Pending { (time(d.next_attempt_at)) } @else { "—" } }
                        td { (time(d.created_at)) }
                        td { (time_opt(d.delivered_at)) }
                        td {
                            @if user.can(Role::Operator) {
                                form method="post" action="/webhooks/replay" {
                                    input type="hidden" name="csrf" value=(user.csrf);
                                    input type="hidden" name="id" value=(d.id);
                                    button.secondary type="submit" name="replay" { "Replay" }
                                }
                            }
                        }
                    }
                }
                @if rows.is_empty() { tr { td colspan="10" { "none" } } }
            }
        }
    };
    layout(Some(user), "Webhooks", notice, body)
}
