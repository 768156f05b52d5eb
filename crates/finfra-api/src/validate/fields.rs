//! Reusable field validators. Each returns `Err(message)` with a message that reads after
//! the field's path (`"must be 16 digits"`), so callers attach their own path.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use super::country::ISO_3166_ALPHA2;
use crate::lenient::money_wire;
use crate::model::common::Gender;
use crate::model::loan::{MAX_PRINCIPAL, MIN_PRINCIPAL};

/// A required string: present and not blank (CONTRACT §1).
///
/// # Errors
///
/// When `value` is empty or only whitespace.
pub fn required(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

fn all_digits(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
}

fn two_digits(value: &str, at: usize) -> u8 {
    // Callers check first that `value` is all ASCII digits and long enough, so each byte
    // is 0..=9 and the result at most 99.
    value.as_bytes()[at..at + 2]
        .iter()
        .fold(0, |acc, b| acc * 10 + (b - b'0'))
}

/// The birth date embedded in a NIK (digits 7 to 12, `DDMMYY`; women have 40 added to
/// the day). The century is not encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NikBirth {
    /// Day of month, with the +40 removed.
    pub day: u32,
    pub month: u32,
    /// `YY`: 0 to 99.
    pub year_of_century: u32,
    /// Whether the day carried +40.
    pub female: bool,
}

impl NikBirth {
    /// Whether `date` is this birth date (in any century).
    pub fn matches(&self, date: NaiveDate) -> bool {
        date.day() == self.day
            && date.month() == self.month
            && date.year().rem_euclid(100).unsigned_abs() == self.year_of_century
    }
}

/// Parses a NIK: 16 digits, of which 7 to 12 are a valid `DDMMYY` date (day + 40 for
/// women). A date valid in either 19YY or 20YY passes (29 February needs a leap year in
/// one of them).
///
/// # Errors
///
/// When the NIK is not 16 digits or its embedded birth date is not a calendar date.
pub fn nik_birth(value: &str) -> Result<NikBirth, String> {
    if value.len() != 16 || !all_digits(value) {
        return Err("must be 16 digits".into());
    }
    let raw_day = u32::from(two_digits(value, 6));
    let month = u32::from(two_digits(value, 8));
    let yy = two_digits(value, 10);
    let year_of_century = u32::from(yy);
    let female = raw_day > 40;
    let day = if female { raw_day - 40 } else { raw_day };
    let valid = [1900, 2000]
        .iter()
        .any(|century| NaiveDate::from_ymd_opt(century + i32::from(yy), month, day).is_some());
    if valid {
        Ok(NikBirth {
            day,
            month,
            year_of_century,
            female,
        })
    } else {
        // The digits themselves are a birth date: personal data, so the message omits them.
        Err("must embed a valid birth date in digits 7-12 (DDMMYY, day + 40 for women)".into())
    }
}

/// A NIK (national identity number): see [`nik_birth`].
///
/// # Errors
///
/// As [`nik_birth`].
pub fn nik(value: &str) -> Result<(), String> {
    nik_birth(value).map(|_| ())
}

/// Whether a NIK agrees with the person's gender and birth date.
///
/// Not part of [`super::Validate`]: Finfra does not state this rule, the reference's own
/// create example fails it (NIK `3275062009921981` encodes 20-09-92, the birth date is
/// 1995-11-01), and corrected civil records can leave a real NIK out of step. The engine
/// may use it to flag a likely typo for review.
///
/// # Errors
///
/// When the NIK is malformed, or its gender or date disagree.
pub fn nik_consistent(value: &str, gender: &Gender, birth_date: NaiveDate) -> Result<(), String> {
    let birth = nik_birth(value)?;
    let mut problems = Vec::new();
    match (gender, birth.female) {
        (Gender::Female, false) => problems.push("encodes a male birth day (no +40) for a FEMALE"),
        (Gender::Male, true) => problems.push("encodes a female birth day (+40) for a MALE"),
        _ => {}
    }
    if !birth.matches(birth_date) {
        problems.push("encodes a birth date different from birth_date");
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(" and "))
    }
}

/// An NPWP (tax id): 15 digits (the classic number) or 16 (the NIK-based one since 2024),
/// **without separators**. The printed form `01.234.567.8-901.000` is refused rather than
/// accepted, because Finfra does not say it accepts it and we send what we validate;
/// use [`normalize_npwp`] first.
///
/// # Errors
///
/// When the value is not 15 or 16 digits.
pub fn npwp(value: &str) -> Result<(), String> {
    if all_digits(value) && matches!(value.len(), 15 | 16) {
        Ok(())
    } else if value.contains(['.', '-']) {
        Err("must be 15 or 16 digits without separators (remove '.' and '-')".into())
    } else {
        Err("must be 15 or 16 digits".into())
    }
}

/// Strips the separators of the printed NPWP form (`01.234.567.8-901.000` →
/// `012345678901000`) and surrounding whitespace; other characters are kept so that
/// [`npwp`] still rejects them.
pub fn normalize_npwp(value: &str) -> String {
    value
        .trim()
        .chars()
        .filter(|c| !matches!(c, '.' | '-' | ' '))
        .collect()
}

/// A phone number in international (E.164) form: `+`, then 8 to 15 digits, the first not
/// `0` (no country code starts with 0).
///
/// # Errors
///
/// When the value is not of that form.
pub fn phone(value: &str) -> Result<(), String> {
    let ok = value.strip_prefix('+').is_some_and(|digits| {
        all_digits(digits) && (8..=15).contains(&digits.len()) && !digits.starts_with('0')
    });
    if ok {
        Ok(())
    } else {
        Err("must be in international format: + then 8 to 15 digits".into())
    }
}

/// The emergency contact's number: E.164 as [`phone`], or an Indonesian local number
/// (`0` then 9 to 13 digits), as in the reference's example `08123456789`.
///
/// # Errors
///
/// When the value is neither form.
pub fn emergency_phone(value: &str) -> Result<(), String> {
    let local = value.starts_with('0') && all_digits(value) && (10..=14).contains(&value.len());
    if local || phone(value).is_ok() {
        Ok(())
    } else {
        Err("must be + then 8 to 15 digits, or a local number 0 then 9 to 13 digits".into())
    }
}

/// A plausible e-mail address: exactly one `@`, non-empty parts, no whitespace, and a
/// domain with a dot that neither starts nor ends it. (Deliverability is not our call.)
///
/// # Errors
///
/// When the value is not of that shape.
pub fn email(value: &str) -> Result<(), String> {
    let ok = match value.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !value.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err("must be an e-mail address such as name@example.com".into())
    }
}

/// An assigned ISO 3166-1 alpha-2 code, upper case (`ID`, `SG`).
///
/// # Errors
///
/// When the value is not one of the 249 assigned codes.
pub fn country_code(value: &str) -> Result<(), String> {
    if ISO_3166_ALPHA2.binary_search(&value).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "must be an ISO 3166-1 alpha-2 country code such as ID (got {value:?})"
        ))
    }
}

/// A SWIFT/BIC code: 4 letters (bank), an ISO country code, 2 letters or digits
/// (location), and optionally 3 letters or digits (branch); upper case.
///
/// # Errors
///
/// When the value is not of that form.
pub fn swift(value: &str) -> Result<(), String> {
    let upper_alnum = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    let ok = value.is_ascii()
        && matches!(value.len(), 8 | 11)
        && value[..4].bytes().all(|b| b.is_ascii_uppercase())
        && country_code(&value[4..6]).is_ok()
        && upper_alnum(&value[6..]);
    if ok {
        Ok(())
    } else {
        Err("must be a SWIFT/BIC code: 8 or 11 upper-case characters such as BNINIDJA".into())
    }
}

/// A money amount to send: strictly positive, at most 2 decimals.
///
/// # Errors
///
/// When the amount is zero, negative, or has more than 2 decimals.
pub fn money(value: &Decimal) -> Result<(), String> {
    money_non_negative(value)?;
    if value.is_zero() {
        Err("must be greater than 0".into())
    } else {
        Ok(())
    }
}

/// A money amount that may be zero (an interest or fee): not negative, at most 2 decimals.
///
/// # Errors
///
/// When the amount is negative or has more than 2 decimals.
pub fn money_non_negative(value: &Decimal) -> Result<(), String> {
    if value.is_sign_negative() && !value.is_zero() {
        Err("must not be negative".into())
    } else if money_wire(value).scale() > 2 {
        Err("must have at most 2 decimal places".into())
    } else {
        Ok(())
    }
}

/// A loan principal: [`money`] between 100 000 and 2 000 000 000 IDR (CONTRACT §5).
///
/// # Errors
///
/// When the amount is not valid money or out of range.
pub fn principal(value: &Decimal) -> Result<(), String> {
    money(value)?;
    if (MIN_PRINCIPAL..=MAX_PRINCIPAL).contains(value) {
        Ok(())
    } else {
        Err(format!(
            "must be between {MIN_PRINCIPAL} and {MAX_PRINCIPAL}"
        ))
    }
}

/// A loan `unique_id`: 6 to 64 characters of `[A-Za-z0-9_-]` (CONTRACT §1).
///
/// # Errors
///
/// When the value is too short, too long, or has another character.
pub fn unique_id(value: &str) -> Result<(), String> {
    let charset = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if charset && (6..=64).contains(&value.len()) {
        Ok(())
    } else {
        Err("must be 6 to 64 characters of A-Z, a-z, 0-9, '_' and '-'".into())
    }
}

/// A document id: at least 6 characters (reference: "min 6 chars").
///
/// # Errors
///
/// When the id is shorter.
pub fn document_id(value: &str) -> Result<(), String> {
    if value.chars().count() >= 6 {
        Ok(())
    } else {
        Err("must be at least 6 characters".into())
    }
}

/// A borrower id: 24 lowercase hex characters (CONTRACT §1).
///
/// # Errors
///
/// When the id is not of that form.
pub fn user_id(value: &str) -> Result<(), String> {
    let ok = value.len() == 24
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err("must be 24 lowercase hex characters".into())
    }
}

/// A birth date that is not obviously wrong without a clock: 1900 or later.
///
/// # Errors
///
/// When the date is before 1900-01-01.
pub fn plausible_birth_date(value: NaiveDate) -> Result<(), String> {
    if value.year() >= 1900 {
        Ok(())
    } else {
        Err("must be 1900-01-01 or later".into())
    }
}

/// A date strictly before `today` (a birth date), for the engine, which owns the clock.
///
/// # Errors
///
/// When `value` is today or later.
pub fn past_date(value: NaiveDate, today: NaiveDate) -> Result<(), String> {
    if value < today {
        Ok(())
    } else {
        Err(format!("must be before {today}"))
    }
}

/// A date strictly after `today` (a due date, a KTP expiry), for the engine.
///
/// # Errors
///
/// When `value` is today or earlier.
pub fn future_date(value: NaiveDate, today: NaiveDate) -> Result<(), String> {
    if value > today {
        Ok(())
    } else {
        Err(format!("must be after {today}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_fixtures::ymd;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn nik_valid_male_and_female() {
        assert_eq!(nik("3275062009921981"), Ok(()));
        let b = nik_birth("3275062009921981").unwrap();
        assert_eq!(
            b,
            NikBirth {
                day: 20,
                month: 9,
                year_of_century: 92,
                female: false
            }
        );
        // Female: day 12 + 40 = 52.
        let b = nik_birth("3273015203850004").unwrap();
        assert_eq!(
            b,
            NikBirth {
                day: 12,
                month: 3,
                year_of_century: 85,
                female: true
            }
        );
        // 31 + 40 = 71, the largest valid day field.
        assert_eq!(nik("3275067101900001"), Ok(()));
        // The reference's Get Borrower NIK.
        assert_eq!(nik("3573032311870003"), Ok(()));
    }

    #[test]
    fn nik_bad_length_or_characters() {
        for bad in [
            "327506200992198",
            "32750620099219811",
            "32750620099219A1",
            "",
            "3275 62009921981",
            "３２７５０６２００９９２１９８１",
        ] {
            assert_eq!(nik(bad), Err("must be 16 digits".into()), "{bad}");
        }
    }

    #[test]
    fn nik_bad_embedded_date() {
        for bad in [
            "3275060009920001", // day 00
            "3275063209920001", // day 32
            "3275064009920001", // day 40 (0 + 40)
            "3275067209920001", // day 72 (32 + 40)
            "3275063002920001", // 30 February
            "3275062013920001", // month 13
            "3275062000920001", // month 00
            "3275062902010001", // 29 Feb 1901 / 2001: no leap year
        ] {
            let err = nik(bad).unwrap_err();
            assert!(err.contains("valid birth date"), "{bad}: {err}");
        }
        // 29 February 2000 was a leap day.
        assert_eq!(nik("3275062902000001"), Ok(()));
        // ... and so is 69 = 29 + 40 for a woman.
        assert_eq!(nik("3275066902000001"), Ok(()));
    }

    #[test]
    fn nik_consistency_with_gender_and_birth_date() {
        assert_eq!(
            nik_consistent("3573032311870003", &Gender::Male, ymd(1987, 11, 23)),
            Ok(())
        );
        assert_eq!(
            nik_consistent("3273015203850004", &Gender::Female, ymd(1985, 3, 12)),
            Ok(())
        );
        let err =
            nik_consistent("3573032311870003", &Gender::Female, ymd(1987, 11, 23)).unwrap_err();
        assert!(err.contains("male birth day"), "{err}");
        let err = nik_consistent("3273015203850004", &Gender::Male, ymd(1985, 3, 12)).unwrap_err();
        assert!(err.contains("female birth day"), "{err}");
        // The reference's create example: the NIK says 20-09-92, the body 1995-11-01.
        let err = nik_consistent("3275062009921981", &Gender::Male, ymd(1995, 11, 1)).unwrap_err();
        assert!(err.contains("different from birth_date"), "{err}");
        // Unknown gender: only the date is compared.
        assert_eq!(
            nik_consistent(
                "3573032311870003",
                &Gender::Unknown("X".into()),
                ymd(1987, 11, 23)
            ),
            Ok(())
        );
    }

    #[test]
    fn npwp_15_or_16_digits_without_separators() {
        assert_eq!(npwp("012345678901000"), Ok(()));
        assert_eq!(npwp("0123456789012345"), Ok(()));
        assert_eq!(
            npwp("01234567890100"),
            Err("must be 15 or 16 digits".into())
        );
        assert_eq!(
            npwp("01234567890123456"),
            Err("must be 15 or 16 digits".into())
        );
        assert!(
            npwp("01.234.567.8-901.000")
                .unwrap_err()
                .contains("without separators")
        );
        assert_eq!(normalize_npwp(" 01.234.567.8-901.000 "), "012345678901000");
        assert_eq!(npwp(&normalize_npwp("01.234.567.8-901.000")), Ok(()));
        assert!(npwp(&normalize_npwp("01/234")).is_err());
    }

    #[test]
    fn phones() {
        for good in [
            "+6281234567890",
            "+6287711998822",
            "+12025550123",
            "+62812345",
        ] {
            assert_eq!(phone(good), Ok(()), "{good}");
        }
        for bad in [
            "081234567890",
            "+62",
            "+6281234",
            "+0123456789",
            "+6281234567890123",
            "+62 812 3456 7890",
            "6281234567890",
            "",
        ] {
            assert!(phone(bad).is_err(), "{bad}");
        }
        for good in [
            "08123456789",
            "+6287854595905",
            "0812345678",
            "02112345678901",
        ] {
            assert_eq!(emergency_phone(good), Ok(()), "{good}");
        }
        for bad in ["0812", "8123456789", "081234567890123", "08-123-456", ""] {
            assert!(emergency_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for good in ["budi@example.com", "a.b+c@mail.co.id"] {
            assert_eq!(email(good), Ok(()), "{good}");
        }
        for bad in [
            "budi",
            "a@b@c.com",
            "@example.com",
            "budi@localhost",
            "budi@.com",
            "budi@com.",
            "bu di@example.com",
            "budi@exa..com",
            "",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn country_codes() {
        for good in ["ID", "SG", "GB", "AQ", "SS", "ZW", "AD"] {
            assert_eq!(country_code(good), Ok(()), "{good}");
        }
        for bad in ["id", "XX", "IDN", "UK", "EU", "", "I"] {
            assert!(country_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn swift_codes() {
        for good in [
            "BNINIDJA",
            "BBIJIDJA",
            "CENAIDJA",
            "DEUTDEFF500",
            "BMRIIDJA",
            "CHASUS33XXX",
        ] {
            assert_eq!(swift(good), Ok(()), "{good}");
        }
        for bad in [
            "BNINIDJ",     // 7 characters
            "BNINIDJA5",   // 9
            "BNINXXJA",    // XX is no country
            "BN1NIDJA",    // digit in the bank code
            "bninidja",    // lower case
            "BNINID_A",    // bad location
            "DEUTDEFF50-", // bad branch
            "BNINIDJAÉ",   // non-ASCII
            "",
        ] {
            assert!(swift(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_rules() {
        assert_eq!(money(&d("1")), Ok(()));
        assert_eq!(money(&d("1.50")), Ok(()));
        // Three decimals written, two meant: fine, written as 1.50.
        assert_eq!(money(&d("1.500")), Ok(()));
        assert_eq!(money(&d("0")), Err("must be greater than 0".into()));
        assert_eq!(money(&d("-1")), Err("must not be negative".into()));
        assert_eq!(
            money(&d("1.005")),
            Err("must have at most 2 decimal places".into())
        );
        assert_eq!(money_non_negative(&d("0.00")), Ok(()));
        assert_eq!(
            money_non_negative(&d("-0.01")),
            Err("must not be negative".into())
        );
    }

    #[test]
    fn principal_range() {
        assert_eq!(principal(&d("100000")), Ok(()));
        assert_eq!(principal(&d("2000000000.00")), Ok(()));
        assert!(
            principal(&d("99999.99"))
                .unwrap_err()
                .contains("between 100000 and 2000000000")
        );
        assert!(principal(&d("2000000000.01")).is_err());
        assert_eq!(principal(&d("-5")), Err("must not be negative".into()));
    }

    #[test]
    fn ids() {
        assert_eq!(unique_id("loan-000123"), Ok(()));
        assert_eq!(unique_id("abc_12"), Ok(()));
        assert_eq!(unique_id(&"a".repeat(64)), Ok(()));
        for bad in ["abc12", "loan 0001", "loan/0001", "pinjaman-ü1", ""] {
            assert!(unique_id(bad).is_err(), "{bad}");
        }
        assert!(unique_id(&"a".repeat(65)).is_err());
        assert_eq!(document_id("doc_01j4abc"), Ok(()));
        assert!(document_id("doc01").is_err());
        assert_eq!(user_id("6a41ff87dda4eefd0b7b0300"), Ok(()));
        for bad in [
            "6A41FF87DDA4EEFD0B7B0300",
            "6a41ff87dda4eefd0b7b030",
            "6a41ff87dda4eefd0b7b030g",
        ] {
            assert!(user_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_with_injected_today() {
        let today = ymd(2026, 6, 1);
        assert_eq!(past_date(ymd(1990, 1, 1), today), Ok(()));
        assert!(past_date(today, today).is_err());
        assert_eq!(future_date(ymd(2026, 6, 2), today), Ok(()));
        assert!(future_date(today, today).is_err());
        assert_eq!(plausible_birth_date(ymd(1900, 1, 1)), Ok(()));
        assert!(plausible_birth_date(ymd(1899, 12, 31)).is_err());
        assert_eq!(required(" x "), Ok(()));
        assert_eq!(required(" \t"), Err("must not be empty".into()));
    }
}
