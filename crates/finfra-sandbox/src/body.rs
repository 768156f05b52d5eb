//! The request body of the JSON endpoints (CONTRACT §1): `application/json`, or
//! `application/x-www-form-urlencoded` read like its JSON twin (an object of strings); any
//! other `Content-Type` is `415`. Multipart is accepted only by `POST /api/documents`, which
//! reads its own body.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A parsed body: `Value::Null` when there was none.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub value: Value,
    /// It came form-encoded: integers may arrive as strings of digits.
    pub form: bool,
}

/// The media type of a request, lower case, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "Unsupported Media Type {what}: send application/json or application/x-www-form-urlencoded"
        ),
    )
}

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media = media_type(req.headers());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        parse(media.as_deref(), &bytes)
    }
}

/// Parses `bytes` sent as `media`.
pub(crate) fn parse(media: Option<&str>, bytes: &[u8]) -> Result<Body, ApiError> {
    let json = |value| Body { value, form: false };
    match media {
        None if bytes.is_empty() => Ok(json(Value::Null)),
        None => Err(unsupported("(no Content-Type)")),
        Some("application/json") if bytes.is_empty() => Ok(json(Value::Null)),
        Some("application/json") => serde_json::from_slice(bytes)
            .map(json)
            .map_err(|e| ApiError::bad_request(format!("Request body is not valid JSON: {e}"))),
        Some("application/x-www-form-urlencoded") if bytes.is_empty() => Ok(Body {
            value: Value::Null,
            form: true,
        }),
        Some("application/x-www-form-urlencoded") => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(bytes).map_err(|e| {
                    ApiError::bad_request(format!("Request body is not valid form data: {e}"))
                })?;
            let mut object = Map::new();
            for (k, v) in pairs {
                if object.insert(k.clone(), Value::String(v)).is_some() {
                    return Err(ApiError::bad_request(format!(
                        "Validation failed: {k} is given more than once"
                    )));
                }
            }
            Ok(Body {
                value: Value::Object(object),
                form: true,
            })
        }
        Some(other) => Err(unsupported(other)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_form_and_others() {
        let b = parse(Some("application/json"), br#"{"unique_id":"loan-1"}"#).unwrap();
        assert_eq!(b.value, json!({"unique_id": "loan-1"}));
        let f = parse(
            Some("application/x-www-form-urlencoded"),
            b"unique_id=loan-1&n=3",
        )
        .unwrap();
        assert_eq!(f.value, json!({"unique_id": "loan-1", "n": "3"}));
        assert!(f.form);
        assert_eq!(parse(Some("text/plain"), b"x").unwrap_err().status, 415);
        assert_eq!(parse(None, b"{}").unwrap_err().status, 415);
        assert_eq!(parse(None, b"").unwrap().value, Value::Null);
        assert_eq!(
            parse(Some("application/json"), b"{").unwrap_err().status,
            400
        );
        assert_eq!(
            parse(Some("application/x-www-form-urlencoded"), b"a=1&a=2")
                .unwrap_err()
                .status,
            400
        );
    }
}
