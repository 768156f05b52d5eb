//! Serde helpers for Finfra's wire quirks: read leniently, write exactly.
//!
//! Finfra's responses render the same field in more than one way (CONTRACT §1): dates as
//! `YYYY-MM-DD` or as ISO-8601 timestamps, `prenuptial_agreement` as `"true"` or `true`,
//! money as a decimal string (and, we fear, sometimes a number), absent values as `null`,
//! `""` or a missing key. Requests, on the other hand, must be written in exactly one form.
//! Every helper here therefore pairs one strict `serialize` with a forgiving `deserialize`,
//! so a single model type can both send a request and read the echo of it.
//!
//! The helpers are used through `#[serde(with = "crate::lenient::…")]`; `Option` variants
//! also need `#[serde(default)]` so a missing key reads as `None`.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

/// Declares a string enum whose wire form is a fixed string per variant, plus an
/// `Unknown(String)` escape for values Finfra adds later.
///
/// Unknown values must not break reading (a new loan status would otherwise fail every
/// loan we fetch), and must round-trip byte for byte so we can log and store them.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know (yet), kept verbatim so it round-trips.
            Unknown(String),
        }

        impl $name {
            /// Every documented wire value, in declaration order.
            pub const KNOWN: &'static [&'static str] = &[$($wire),+];

            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Unknown(other) => other.as_str(),
                }
            }

            /// Whether this is a value the reference or contract does not document.
            pub fn is_unknown(&self) -> bool {
                matches!(self, Self::Unknown(_))
            }
        }

        impl $crate::lenient::WireEnum for $name {
            fn known_values() -> &'static [&'static str] {
                Self::KNOWN
            }

            fn wire(&self) -> &str {
                self.as_str()
            }
        }

        impl ::core::convert::From<&str> for $name {
            fn from(wire: &str) -> Self {
                match wire {
                    $( $wire => Self::$variant, )+
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }

        impl ::core::convert::From<String> for $name {
            fn from(wire: String) -> Self {
                match wire.as_str() {
                    $( $wire => Self::$variant, )+
                    _ => Self::Unknown(wire),
                }
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = ::core::convert::Infallible;

            fn from_str(wire: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(wire))
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <String as ::serde::Deserialize>::deserialize(deserializer).map(Self::from)
            }
        }
    };
}
pub(crate) use string_enum;

/// What validation needs to know about a [`string_enum!`] type: whether a request is about
/// to send a value Finfra does not document.
pub(crate) trait WireEnum {
    fn known_values() -> &'static [&'static str];
    fn wire(&self) -> &str;
}

// ---------------------------------------------------------------------------------------
// Parsing, shared by the visitors below.

fn parse_decimal(text: &str) -> Result<Decimal, String> {
    // `from_str_exact` refuses to round silently, which matters for money.
    Decimal::from_str_exact(text.trim()).map_err(|e| format!("invalid decimal {text:?}: {e}"))
}

fn decimal_from_f64(value: f64) -> Result<Decimal, String> {
    // A JSON number with a fraction reaches us as f64. Its shortest round-trip rendering
    // ("1234.5", never an exponent) is what the sender wrote, so parse that rather than
    // converting the binary value (which would give 1234.4999999…).
    if value.is_finite() {
        parse_decimal(&value.to_string())
    } else {
        Err(format!("invalid decimal {value}"))
    }
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date);
    }
    // "1987-11-23T00:00:00.000Z": keep the calendar date as written. Converting to UTC
    // first could move a "+07:00" midnight to the previous day.
    if let Ok(ts) = DateTime::parse_from_rfc3339(text) {
        return Ok(ts.date_naive());
    }
    if let Ok(ts) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(ts.date());
    }
    Err(format!(
        "invalid date {text:?}: expected YYYY-MM-DD or an ISO-8601 timestamp"
    ))
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(ts) = DateTime::parse_from_rfc3339(text) {
        return Ok(ts.with_timezone(&Utc));
    }
    // Without an offset we assume UTC, which is what Finfra's `Z` timestamps use.
    if let Ok(ts) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(ts.and_utc());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!("invalid timestamp {text:?}: expected ISO-8601"))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("true") => Ok(true),
        t if t.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(format!(
            "invalid boolean {other:?}: expected \"true\" or \"false\""
        )),
    }
}

/// The money form written on the wire: the value with at most 2 decimals when it has no
/// more (`1.7500` → `"1.75"`, from arithmetic), otherwise untouched so validation and
/// Finfra see the real value instead of a silently rounded one.
pub(crate) fn money_wire(value: &Decimal) -> Decimal {
    let rounded = value.round_dp(2);
    if value.scale() > 2 && rounded == *value {
        rounded
    } else {
        *value
    }
}

// ---------------------------------------------------------------------------------------
// One visitor handles both the required and the optional shape of a field; `Option`
// helpers map `null` / `""` to `None` and the required ones reject them.

struct Lenient<T> {
    expecting: &'static str,
    from_str: fn(&str) -> Result<T, String>,
    from_f64: Option<fn(f64) -> Result<T, String>>,
    from_i128: Option<fn(i128) -> Result<T, String>>,
    from_bool: Option<fn(bool) -> T>,
}

impl<'de, T> Visitor<'de> for Lenient<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.trim().is_empty() {
            return Ok(None);
        }
        (self.from_str)(v).map(Some).map_err(E::custom)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        match self.from_bool {
            Some(from_bool) => Ok(Some(from_bool(v))),
            None => Err(E::invalid_type(de::Unexpected::Bool(v), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.visit_i128(i128::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.visit_i128(i128::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        match self.from_i128 {
            Some(from_int) => from_int(v).map(Some).map_err(E::custom),
            None => Err(E::invalid_type(de::Unexpected::Other("integer"), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        match self.from_f64 {
            Some(from_f64) => from_f64(v).map(Some).map_err(E::custom),
            None => Err(E::invalid_type(de::Unexpected::Float(v), &self)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn required<'de, D: Deserializer<'de>, T>(d: D, visitor: Lenient<T>) -> Result<T, D::Error> {
    let expecting = visitor.expecting;
    d.deserialize_any(visitor)?
        .ok_or_else(|| de::Error::custom(format!("expected {expecting}, found null or \"\"")))
}

fn decimal_visitor() -> Lenient<Decimal> {
    Lenient {
        expecting: "a decimal string such as \"5000000.00\" (or a JSON number)",
        from_str: parse_decimal,
        from_f64: Some(decimal_from_f64),
        from_i128: Some(|v| Decimal::try_from_i128_with_scale(v, 0).map_err(|e| e.to_string())),
        from_bool: None,
    }
}

fn date_visitor() -> Lenient<NaiveDate> {
    Lenient {
        expecting: "a date as YYYY-MM-DD or an ISO-8601 timestamp",
        from_str: parse_date,
        from_f64: None,
        from_i128: None,
        from_bool: None,
    }
}

fn timestamp_visitor() -> Lenient<DateTime<Utc>> {
    Lenient {
        expecting: "an ISO-8601 timestamp",
        from_str: parse_timestamp,
        from_f64: None,
        from_i128: None,
        from_bool: None,
    }
}

fn bool_visitor() -> Lenient<bool> {
    Lenient {
        expecting: "\"true\", \"false\" or a JSON boolean",
        from_str: parse_bool,
        from_f64: None,
        from_i128: None,
        from_bool: Some(|v| v),
    }
}

fn u32_visitor() -> Lenient<u32> {
    Lenient {
        expecting: "a non-negative integer (or a string of digits)",
        from_str: |s| {
            s.trim()
                .parse::<u32>()
                .map_err(|e| format!("invalid integer {s:?}: {e}"))
        },
        from_f64: Some(|v| {
            if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
                // Exact: integral and in range, checked just above.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(v as u32)
            } else {
                Err(format!("invalid integer {v}"))
            }
        }),
        from_i128: Some(|v| u32::try_from(v).map_err(|_| format!("integer {v} out of range"))),
        from_bool: None,
    }
}

// ---------------------------------------------------------------------------------------

/// Money: written as a decimal string with 0..2 decimals, read from a string or a number.
pub(crate) mod money {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&money_wire(value))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        required(d, decimal_visitor())
    }
}

/// Optional money; `null` and `""` read as `None`.
pub(crate) mod option_money {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Decimal>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(&money_wire(v)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Decimal>, D::Error> {
        d.deserialize_any(decimal_visitor())
    }
}

/// A decimal that is not money (an interest rate such as `"0.0175"`): written as a string
/// exactly as given, read from a string or a number.
pub(crate) mod decimal {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        required(d, decimal_visitor())
    }
}

/// A calendar date: written `YYYY-MM-DD`, read from that or an ISO-8601 timestamp.
pub(crate) mod date {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&value.format("%Y-%m-%d"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        required(d, date_visitor())
    }
}

/// Optional calendar date; `null` and `""` read as `None`.
pub(crate) mod option_date {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<NaiveDate>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.collect_str(&v.format("%Y-%m-%d")),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<NaiveDate>, D::Error> {
        d.deserialize_any(date_visitor())
    }
}

/// A point in time: written RFC 3339 in UTC (`2025-06-29T09:00:00Z`), read from any
/// RFC 3339 offset, an offset-less timestamp (taken as UTC) or a bare date (midnight UTC).
pub(crate) mod timestamp {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        required(d, timestamp_visitor())
    }
}

/// Optional point in time; `null` and `""` read as `None`.
pub(crate) mod option_timestamp {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&v.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        d.deserialize_any(timestamp_visitor())
    }
}

/// Optional boolean sent as the string `"true"`/`"false"` (as `prenuptial_agreement`
/// requires) and read from that or a JSON boolean (as Finfra returns it).
pub(crate) mod option_bool_string {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(true) => s.serialize_str("true"),
            Some(false) => s.serialize_str("false"),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(bool_visitor())
    }
}

/// Optional count read from a number or a string of digits; written as a JSON number.
pub(crate) mod option_u32 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_u32(*v),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_any(u32_visitor())
    }
}

/// Reads an optional string enum (or string) where `""` means absent. Writing uses the
/// type's own `Serialize`, so use it with `deserialize_with`.
pub(crate) fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw.filter(|s| !s.trim().is_empty()).map(T::from))
}

/// Reads `null` as the type's default (an empty list or map) instead of failing.
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use serde_json::json;

    string_enum! {
        /// Test enum.
        enum Colour {
            Red => "RED",
            DarkBlue => "DARK_BLUE",
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(with = "money")]
        amount: Decimal,
        #[serde(
            default,
            with = "option_money",
            skip_serializing_if = "Option::is_none"
        )]
        fee: Option<Decimal>,
        #[serde(with = "date")]
        day: NaiveDate,
        #[serde(default, with = "option_date", skip_serializing_if = "Option::is_none")]
        other_day: Option<NaiveDate>,
        #[serde(
            default,
            with = "option_bool_string",
            skip_serializing_if = "Option::is_none"
        )]
        flag: Option<bool>,
        #[serde(
            default,
            deserialize_with = "empty_as_none",
            skip_serializing_if = "Option::is_none"
        )]
        colour: Option<Colour>,
    }

    fn read(value: serde_json::Value) -> Sample {
        serde_json::from_value(value).expect("sample reads")
    }

    #[test]
    fn enum_known_and_unknown_round_trip() {
        assert_eq!(
            serde_json::to_value(Colour::DarkBlue).unwrap(),
            json!("DARK_BLUE")
        );
        let c: Colour = serde_json::from_value(json!("RED")).unwrap();
        assert_eq!(c, Colour::Red);
        let c: Colour = serde_json::from_value(json!("Purple-ish")).unwrap();
        assert_eq!(c, Colour::Unknown("Purple-ish".into()));
        assert!(c.is_unknown());
        assert_eq!(serde_json::to_value(&c).unwrap(), json!("Purple-ish"));
        assert_eq!(Colour::KNOWN, &["RED", "DARK_BLUE"]);
        assert_eq!(Colour::DarkBlue.to_string(), "DARK_BLUE");
        // Case matters on the wire: "red" is not RED.
        assert_eq!(Colour::from("red"), Colour::Unknown("red".into()));
    }

    #[test]
    fn money_reads_string_and_number_and_writes_string() {
        let s = read(json!({"amount": "5000000.00", "day": "2024-01-31"}));
        assert_eq!(s.amount, Decimal::new(500_000_000, 2));
        assert_eq!(
            serde_json::to_value(&s).unwrap()["amount"],
            json!("5000000.00")
        );

        let s = read(json!({"amount": 5000000, "day": "2024-01-31"}));
        assert_eq!(s.amount, Decimal::from(5_000_000));
        assert_eq!(
            serde_json::to_value(&s).unwrap()["amount"],
            json!("5000000")
        );

        let s = read(json!({"amount": 1234.5, "day": "2024-01-31"}));
        assert_eq!(s.amount, Decimal::new(12345, 1));
        assert_eq!(serde_json::to_value(&s).unwrap()["amount"], json!("1234.5"));

        assert!(
            serde_json::from_value::<Sample>(json!({"amount": "", "day": "2024-01-31"})).is_err()
        );
        assert!(
            serde_json::from_value::<Sample>(json!({"amount": "12x", "day": "2024-01-31"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<Sample>(json!({"amount": null, "day": "2024-01-31"})).is_err()
        );
    }

    #[test]
    fn money_written_with_at_most_two_decimals_when_exact() {
        assert_eq!(money_wire(&Decimal::new(17500, 4)).to_string(), "1.75");
        assert_eq!(money_wire(&Decimal::new(17550, 4)).to_string(), "1.7550");
        assert_eq!(money_wire(&Decimal::new(1755, 3)).to_string(), "1.755");
        assert_eq!(money_wire(&Decimal::new(100, 2)).to_string(), "1.00");
    }

    #[test]
    fn optional_money_null_empty_absent() {
        for v in [json!(null), json!("")] {
            let s = read(json!({"amount": "1", "day": "2024-01-31", "fee": v}));
            assert_eq!(s.fee, None);
        }
        let s = read(json!({"amount": "1", "day": "2024-01-31"}));
        assert_eq!(s.fee, None);
        let s = read(json!({"amount": "1", "day": "2024-01-31", "fee": 2.5}));
        assert_eq!(s.fee, Some(Decimal::new(25, 1)));
        assert_eq!(serde_json::to_value(&s).unwrap()["fee"], json!("2.5"));
    }

    #[test]
    fn dates_read_both_forms_and_write_plain() {
        let s = read(json!({"amount": "1", "day": "1987-11-23T00:00:00.000Z"}));
        assert_eq!(s.day, NaiveDate::from_ymd_opt(1987, 11, 23).unwrap());
        assert_eq!(
            serde_json::to_value(&s).unwrap()["day"],
            json!("1987-11-23")
        );
        // The date as written, not shifted to UTC.
        let s = read(json!({"amount": "1", "day": "1987-11-23T00:30:00+07:00"}));
        assert_eq!(s.day, NaiveDate::from_ymd_opt(1987, 11, 23).unwrap());
        let s = read(json!({"amount": "1", "day": "2024-01-31", "other_day": ""}));
        assert_eq!(s.other_day, None);
        assert!(
            serde_json::from_value::<Sample>(json!({"amount": "1", "day": "2024-02-30"})).is_err()
        );
        assert!(
            serde_json::from_value::<Sample>(json!({"amount": "1", "day": "31/01/2024"})).is_err()
        );
    }

    #[test]
    fn bool_string_reads_both_and_writes_string() {
        for (v, want) in [
            (json!("true"), true),
            (json!(false), false),
            (json!("false"), false),
            (json!(true), true),
        ] {
            let s = read(json!({"amount": "1", "day": "2024-01-31", "flag": v}));
            assert_eq!(s.flag, Some(want));
        }
        let s = read(json!({"amount": "1", "day": "2024-01-31", "flag": true}));
        assert_eq!(serde_json::to_value(&s).unwrap()["flag"], json!("true"));
        assert!(
            serde_json::from_value::<Sample>(
                json!({"amount": "1", "day": "2024-01-31", "flag": "yes"})
            )
            .is_err()
        );
    }

    #[test]
    fn empty_enum_is_none() {
        let s = read(json!({"amount": "1", "day": "2024-01-31", "colour": ""}));
        assert_eq!(s.colour, None);
        let s = read(json!({"amount": "1", "day": "2024-01-31", "colour": "RED"}));
        assert_eq!(s.colour, Some(Colour::Red));
        let out = serde_json::to_value(read(json!({"amount": "1", "day": "2024-01-31"}))).unwrap();
        assert_eq!(out, json!({"amount": "1", "day": "2024-01-31"}));
    }

    #[test]
    fn timestamps_lenient() {
        let want = DateTime::parse_from_rfc3339("2025-06-29T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_timestamp("2025-06-29T09:00:00+07:00").unwrap(), want);
        assert_eq!(parse_timestamp("2025-06-29T02:00:00").unwrap(), want);
        assert_eq!(
            parse_timestamp("2025-06-29").unwrap(),
            DateTime::parse_from_rfc3339("2025-06-29T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
        );
        assert!(parse_timestamp("yesterday").is_err());
    }
}
