//! What a person may supply to `resolve` a workflow in `needs_attention`, the same for every
//! machine (each documents what the two mean for it).

use serde_json::Value;

use crate::ids::UserId;

/// The `data` of an operator's resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// `{}` (or no data) or `{"retry": true}`: run the stuck step again (a step whose
    /// request's outcome was unknown reconciles first; a wait starts afresh).
    Retry,
    /// `{"user_id": "<24 hex>"}`: the borrower's id, found by a person when the event that
    /// should have told it was lost for good.
    UserId(UserId),
}

/// Reads `data`; `Err` says what is wrong with it.
pub(crate) fn parse(data: &Value) -> Result<Resolution, String> {
    let map = match data {
        Value::Null => return Ok(Resolution::Retry),
        Value::Object(map) => map,
        _ => return Err("data must be a JSON object".to_owned()),
    };
    if let Some(key) = map
        .keys()
        .find(|k| !["retry", "user_id"].contains(&k.as_str()))
    {
        return Err(format!("unknown field {key:?} (accepted: retry, user_id)"));
    }
    match (map.get("retry"), map.get("user_id")) {
        (None, None) | (Some(Value::Bool(true)), None) => Ok(Resolution::Retry),
        (None, Some(Value::String(id))) => UserId::new(id.clone())
            .map(Resolution::UserId)
            .map_err(|e| e.to_string()),
        (Some(_), Some(_)) => Err("give either retry or user_id".to_owned()),
        (Some(_), None) => Err("retry must be true".to_owned()),
        (None, Some(_)) => Err("user_id must be a string".to_owned()),
    }
}
