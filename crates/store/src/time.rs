//! How timestamps are stored, and whose clock decides.
//!
//! PostgreSQL stores `timestamptz`; SQLite stores UTC ISO-8601 text with milliseconds, always
//! 24 characters (`2026-11-24T05:50:00.123Z`), the format of SQLite's own
//! `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`. Fixed width makes text order equal time order, so
//! `next_run_at <= ?` and indexes work on text, and a person reads the rows as they are.
//!
//! Whose clock: on PostgreSQL the database's `now()` judges "due" and leases (a fleet of
//! machines agrees on one clock); on SQLite, one machine, the process clock does. Times the
//! caller computes (`next_run_at`, `deadline`) come from the caller's clock on both.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use crate::error::{StoreError, decode_error};

/// Formats a timestamp the way the SQLite schema stores it (milliseconds, truncated).
pub(crate) fn to_sqlite(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Formats an optional timestamp for SQLite.
pub(crate) fn to_sqlite_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(to_sqlite)
}

/// Parses a timestamp stored by SQLite (ours or SQLite's `strftime`).
///
/// # Errors
/// A decode error when the text is not RFC 3339.
pub(crate) fn from_sqlite(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| decode_error(format!("timestamp {s:?}: {e}")))
}

/// Parses an optional SQLite timestamp.
///
/// # Errors
/// A decode error when the text is not RFC 3339.
pub(crate) fn from_sqlite_opt(s: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.as_deref().map(from_sqlite).transpose()
}

/// A `std` duration as a chrono one, saturating (a lease of centuries is a caller bug, not a
/// reason to panic).
pub(crate) fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sqlite_format_is_fixed_width_and_sorts_like_time() {
        let a = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("valid");
        let b = a + TimeDelta::microseconds(1500);
        assert_eq!(to_sqlite(a), "2026-01-02T03:04:05.000Z");
        assert_eq!(to_sqlite(b), "2026-01-02T03:04:05.001Z");
        assert!(to_sqlite(a) < to_sqlite(b));
        assert_eq!(to_sqlite(a).len(), 24);
        assert_eq!(
            from_sqlite(&to_sqlite(b)).expect("parses"),
            a + TimeDelta::milliseconds(1)
        );
    }
}
