//! Building URLs: checking path parameters and percent-encoding them.
//!
//! Every path parameter goes through a check here before a URL is built from it, so an
//! empty id never turns `/api/core/users/{userId}` into `/api/core/users/` (another
//! endpoint), and a `/` or `..` in an id cannot address a different resource. Segments are
//! percent-encoded by [`Url::path_segments_mut`], which also encodes `/` and `%`.

use reqwest::header::HeaderValue;
use url::Url;

use crate::error::Error;
use crate::validate::{self, FieldError, ValidationErrors};

/// The URL of `segments` below `base`, keeping `base`'s own path as a prefix.
///
/// # Errors
/// [`Error::InvalidUrl`] when `base` cannot carry a path.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Result<Url, Error> {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url.path_segments_mut().map_err(|()| Error::InvalidUrl {
            what: "base URL",
            reason: "it cannot be a base (no host or path)".to_owned(),
        })?;
        // `https://host/prefix/` ends in an empty segment; drop it so the prefix joins cleanly.
        path.pop_if_empty();
        path.extend(segments);
    }
    // The URL standard leaves `[`, `]`, `^` and `|` raw in a path; RFC 3986 does not allow
    // them there, and strict servers answer `400`. Any `%` of a segment is already `%25`, so
    // encoding the raw ones here cannot double-encode.
    if url.path().contains(['[', ']', '^', '|']) {
        let path = url
            .path()
            .replace('[', "%5B")
            .replace(']', "%5D")
            .replace('^', "%5E")
            .replace('|', "%7C");
        url.set_path(&path);
    }
    Ok(url)
}

/// The segments of a fixed path such as `/api/auth/token/v2`.
pub(crate) fn split(path: &'static str) -> Vec<&'static str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// One invalid parameter as a validation error.
pub(crate) fn invalid(path: &str, message: impl Into<String>) -> Error {
    Error::Invalid(ValidationErrors::from(FieldError {
        path: path.to_owned(),
        message: message.into(),
    }))
}

/// Runs one of [`crate::validate`]'s field checks on a parameter named `name`.
fn checked<'a>(
    name: &str,
    value: &'a str,
    check: fn(&str) -> Result<(), String>,
) -> Result<&'a str, Error> {
    check(value)
        .map(|()| value)
        .map_err(|message| invalid(name, message))
}

/// An opaque id (KYC session id, reffid, hub name): not blank and not a dot segment, which
/// URL normalisation would remove.
///
/// # Errors
/// [`Error::Invalid`] naming `name`.
pub(crate) fn opaque<'a>(name: &str, value: &'a str) -> Result<&'a str, Error> {
    checked(name, value, validate::required)?;
    if matches!(value, "." | "..") {
        return Err(invalid(name, "must not be a dot segment"));
    }
    Ok(value)
}

/// A borrower id: the same rule as a `user_id` in a body (24 lowercase hex characters).
///
/// # Errors
/// [`Error::Invalid`] otherwise.
pub(crate) fn user_id(value: &str) -> Result<&str, Error> {
    checked("userId", value, validate::user_id)
}

/// A KYC session id (a JWT), used in paths and in the `kyc-id` header.
///
/// # Errors
/// [`Error::Invalid`] when blank or not sendable as a header.
pub(crate) fn kyc_id<'a>(name: &str, value: &'a str) -> Result<&'a str, Error> {
    opaque(name, value)?;
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(name, "must be printable ASCII without spaces"));
    }
    Ok(value)
}

/// A loan `unique_id` (6 to 64 characters of `[A-Za-z0-9_-]`).
///
/// # Errors
/// [`Error::Invalid`] otherwise.
pub(crate) fn unique_id<'a>(name: &str, value: &'a str) -> Result<&'a str, Error> {
    checked(name, value, validate::unique_id)
}

/// A document id: at least 6 characters.
///
/// # Errors
/// [`Error::Invalid`] otherwise.
pub(crate) fn document_id(value: &str) -> Result<&str, Error> {
    checked("documentId", value, validate::document_id)?;
    opaque("documentId", value)
}

/// A NIK (national identity number), as [`validate::nik`] checks it.
///
/// # Errors
/// [`Error::Invalid`] otherwise; the message does not repeat the value.
pub(crate) fn identity_number(value: &str) -> Result<&str, Error> {
    // validate::nik's message quotes the embedded birth date; an error must not carry PII.
    validate::nik(value)
        .map(|()| value)
        .map_err(|_| invalid("identityNumber", "must be a valid 16-digit NIK"))
}

/// A header value from a checked parameter.
///
/// # Errors
/// [`Error::Invalid`] naming `name` when the value cannot be a header.
pub(crate) fn header(name: &str, value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value).map_err(|_| invalid(name, "is not a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str, segments: &[&str]) -> String {
        join(&Url::parse(base).unwrap(), segments)
            .unwrap()
            .to_string()
    }

    #[test]
    fn joins_below_the_base_path_with_or_without_trailing_slash() {
        let segments = ["api", "core", "users"];
        assert_eq!(url("http://h:1", &segments), "http://h:1/api/core/users");
        assert_eq!(url("http://h:1/", &segments), "http://h:1/api/core/users");
        assert_eq!(url("http://h/p", &segments), "http://h/p/api/core/users");
        assert_eq!(url("http://h/p/", &segments), "http://h/p/api/core/users");
        assert_eq!(
            url("http://h/p/?x=1#f", &segments),
            "http://h/p/api/core/users"
        );
    }

    #[test]
    fn percent_encodes_segments() {
        assert_eq!(
            url("http://h", &["api", "x/y?z#%"]),
            "http://h/api/x%2Fy%3Fz%23%25"
        );
    }

    #[test]
    fn percent_encodes_what_rfc_3986_forbids_in_a_path() {
        // The URL standard leaves these raw; a strict server refuses them.
        assert_eq!(
            url("http://h/p/", &["api", "REF[1]^a|b", "%5B"]),
            "http://h/p/api/REF%5B1%5D%5Ea%7Cb/%255B"
        );
        // Every printable ASCII character is either a pchar (RFC 3986) or encoded.
        let all: String = (0x20_u8..0x7f).map(char::from).collect();
        let joined = url("http://h", &[all.as_str()]);
        let path = joined.strip_prefix("http://h/").unwrap();
        assert!(
            path.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b)),
            "{path}"
        );
    }

    #[test]
    fn cannot_be_a_base_is_an_error() {
        let base = Url::parse("mailto:a@b.c").unwrap();
        assert!(matches!(join(&base, &["x"]), Err(Error::InvalidUrl { .. })));
    }

    #[test]
    fn checks_parameters() {
        assert!(user_id("6a41ff87dda4eefd0b7b0300").is_ok());
        for bad in [
            "",
            " ",
            ".",
            "..",
            "6A41FF87DDA4EEFD0B7B0300",
            "6a41ff87/da4eefd0b7b0300",
        ] {
            assert!(matches!(user_id(bad), Err(Error::Invalid(_))), "{bad:?}");
        }
        assert!(unique_id("uniqueId", "loan-01_A").is_ok());
        for bad in ["short", "has space1", "slash/abc", &"x".repeat(65)] {
            assert!(unique_id("uniqueId", bad).is_err(), "{bad:?}");
        }
        assert!(unique_id("uniqueId", &"x".repeat(64)).is_ok());
        assert!(opaque("reffid", "REF-1").is_ok());
        for bad in ["", "  ", ".", ".."] {
            assert!(opaque("reffid", bad).is_err(), "{bad:?}");
        }
        assert!(document_id("doc_01j4abc").is_ok());
        assert!(document_id("doc01").is_err());
        assert!(identity_number("3275062009921981").is_ok());
        assert!(identity_number("327506200992198").is_err());
        assert!(identity_number("327506200992198x").is_err());
        assert!(kyc_id("kycId", "eyJhbGciOiJIUzI1NiJ9.e30.sig").is_ok());
        assert!(kyc_id("kycId", "eyJ hbG").is_err());
    }

    #[test]
    fn errors_name_the_parameter() {
        let Err(Error::Invalid(errors)) = unique_id("loanUniqueId", "abc") else {
            panic!("expected a validation error");
        };
        assert_eq!(errors.errors()[0].path, "loanUniqueId");
    }
}
