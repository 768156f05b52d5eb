//! The rule for business keys: 1 to [`BUSINESS_KEY_MAX_CHARS`] printable characters, without
//! leading or trailing whitespace. A key is what operators type (`finflow cancel budi`), what
//! logs and messages print and what other systems join on: a newline, a tab, 5,000 characters
//! or a lone space in one makes it unusable for all of that.
//!
//! The rule is written twice, here and in the SQL function `finflow_business_key_problem`
//! (migrations/postgres/0005), with the same checks in the same order and the same words; the
//! store's tests check both agree on every character up to U+3100 in every position.
//!
//! * "Printable" means no control character (Unicode category Cc: U+0001-U+001F,
//!   U+007F-U+009F) and no line or paragraph separator (U+2028, U+2029): anything that
//!   breaks a line or a terminal.
//! * "Whitespace" is Unicode's `White_Space` ([`char::is_whitespace`]); inside the key it is
//!   allowed (`order 42`).
//! * Characters are Unicode scalar values (what PostgreSQL's `char_length` counts in a UTF8
//!   database), positions count them from 1.
//!
//! Keys stored before the rule existed stay as they are; the rule applies to submits.

use std::fmt;

/// The longest business key, in characters.
pub const BUSINESS_KEY_MAX_CHARS: usize = 200;

/// What is wrong with a business key (the first problem found, in the order listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusinessKeyError {
    /// The key is empty.
    Empty,
    /// The key is longer than [`BUSINESS_KEY_MAX_CHARS`].
    TooLong { chars: usize },
    /// A control character or line separator at `position` (1-based, in characters).
    NotPrintable { character: char, position: usize },
    /// The key starts with whitespace.
    LeadingWhitespace,
    /// The key ends with whitespace.
    TrailingWhitespace,
}

impl fmt::Display for BusinessKeyError {
    /// The rule, then the problem: `business key must be 1 to 200 printable characters
    /// without surrounding whitespace: it has a newline at position 5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "business key must be 1 to {BUSINESS_KEY_MAX_CHARS} printable characters without \
             surrounding whitespace: "
        )?;
        match self {
            Self::Empty => f.write_str("it is empty"),
            Self::TooLong { chars } => write!(f, "it has {chars} characters"),
            Self::NotPrintable {
                character,
                position,
            } => {
                let name = match character {
                    '\n' => "a newline".to_owned(),
                    '\r' => "a carriage return".to_owned(),
                    '\t' => "a tab".to_owned(),
                    other => format!("a non-printable character (U+{:04X})", u32::from(*other)),
                };
                write!(f, "it has {name} at position {position}")
            }
            Self::LeadingWhitespace => f.write_str("it starts with whitespace"),
            Self::TrailingWhitespace => f.write_str("it ends with whitespace"),
        }
    }
}

impl std::error::Error for BusinessKeyError {}

/// `true` for the characters a business key may not contain anywhere.
fn is_not_printable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Checks `key` against the rule (see the module docs).
///
/// # Errors
/// The first problem found: empty, too long, a non-printable character (the first one), then
/// leading and trailing whitespace.
pub fn check_business_key(key: &str) -> Result<(), BusinessKeyError> {
    let chars = key.chars().count();
    if chars == 0 {
        return Err(BusinessKeyError::Empty);
    }
    if chars > BUSINESS_KEY_MAX_CHARS {
        return Err(BusinessKeyError::TooLong { chars });
    }
    if let Some((index, character)) = key.chars().enumerate().find(|(_, c)| is_not_printable(*c)) {
        return Err(BusinessKeyError::NotPrintable {
            character,
            position: index + 1,
        });
    }
    if key.starts_with(char::is_whitespace) {
        return Err(BusinessKeyError::LeadingWhitespace);
    }
    if key.ends_with(char::is_whitespace) {
        return Err(BusinessKeyError::TrailingWhitespace);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(key: &str) -> String {
        check_business_key(key)
            .expect_err("refused")
            .to_string()
            .split_once(": ")
            .map(|(_, p)| p.to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn ordinary_keys_pass() {
        for key in [
            "budi",
            "order 42",
            "loan-budi/2026",
            "ÄÖÜ-ñ-日本-🙂",
            "x",
            &"k".repeat(BUSINESS_KEY_MAX_CHARS),
            // Multi-byte characters count once each.
            &"é".repeat(BUSINESS_KEY_MAX_CHARS),
        ] {
            assert_eq!(check_business_key(key), Ok(()), "{key:?}");
        }
    }

    #[test]
    fn each_problem_is_named_with_the_rule() {
        let err = check_business_key("budi\nx").expect_err("newline");
        assert_eq!(
            err.to_string(),
            "business key must be 1 to 200 printable characters without surrounding \
             whitespace: it has a newline at position 5"
        );
        assert_eq!(problem(""), "it is empty");
        assert_eq!(problem(&"k".repeat(5000)), "it has 5000 characters");
        assert_eq!(problem(&"é".repeat(201)), "it has 201 characters");
        assert_eq!(problem("a\tb"), "it has a tab at position 2");
        assert_eq!(problem("\r"), "it has a carriage return at position 1");
        assert_eq!(
            problem("ab\u{7}"),
            "it has a non-printable character (U+0007) at position 3"
        );
        assert_eq!(
            problem("日\u{2028}"),
            "it has a non-printable character (U+2028) at position 2"
        );
        assert_eq!(
            problem("a\u{85}"),
            "it has a non-printable character (U+0085) at position 2"
        );
        assert_eq!(problem(" "), "it starts with whitespace");
        assert_eq!(problem(" budi"), "it starts with whitespace");
        assert_eq!(problem("budi\u{a0}"), "it ends with whitespace");
        assert_eq!(problem("\u{3000}budi"), "it starts with whitespace");
    }
}
