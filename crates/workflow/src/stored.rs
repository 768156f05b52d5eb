//! The stored form of a state: slim.
//!
//! A state holds everything its decisions read, including two things that never change
//! after start and are most of its size: the definition it pinned (about 1.3 KB) and the
//! request (a person's KYC file, a loan's terms). Written into `workflows.context` on every
//! step they would be rewritten every step (through TOAST on PostgreSQL) and would copy
//! personal data out of `workflows.input`. So the context leaves them out:
//!
//! - the definition is stored once, in the `definitions` table, under its *pin*: the
//!   SHA-256 of its JSON. The context names it: `"definition": "<64 hex>"`. [`Pins`] holds
//!   the definitions a process knows by pin (the registry's from the start; the executor
//!   loads others from the store on demand, [`crate::EngineError::UnknownDefinition`]);
//! - the request (the fields a kind lists in [`Workflow::REBUILT`]) is read again from
//!   `workflows.input` on every step by [`Workflow::rebuild`]: the input validated against
//!   the pinned definition as at `started_at`, which gives exactly what start got.
//!
//! A context written by an earlier build, with both inline, still reads as it is; the next
//! step writes it slim (and the executor stores its definition first, see
//! [`Pin::is_stored`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::Serialize;
use serde::de::value::MapDeserializer;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::definition::Definition;
use crate::engine::EngineError;
use crate::machine::{InputErrors, Workflow};

/// A stored workflow, as the engine reads it: its slim context and its submitted input.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// `workflows.context`.
    pub context: &'a Value,
    /// `workflows.input`.
    pub input: &'a Value,
    /// The fields rebuilt from `input`, kept across the decisions of one holder.
    pub rebuilt: Option<&'a Rebuilt>,
}

impl<'a> Stored<'a> {
    /// A stored workflow.
    #[must_use]
    pub fn new(context: &'a Value, input: &'a Value) -> Self {
        Self {
            context,
            input,
            rebuilt: None,
        }
    }

    /// A stored workflow whose rebuilt fields are kept in `rebuilt` for the next decisions
    /// (the executor's, for as long as it holds the workflow: the input and the pinned
    /// definition do not change, so neither do they).
    #[must_use]
    pub fn cached(context: &'a Value, input: &'a Value, rebuilt: &'a Rebuilt) -> Self {
        Self {
            context,
            input,
            rebuilt: Some(rebuilt),
        }
    }
}

/// The fields [`Workflow::rebuild`] gave back for one workflow, once: validating the input
/// on every decision would cost more than the decision.
#[derive(Debug, Default)]
pub struct Rebuilt(std::sync::OnceLock<Vec<(&'static str, Value)>>);

/// A definition under its pin.
#[derive(Debug)]
pub struct Pin {
    /// SHA-256 (lowercase hex) of [`Self::json`]'s text.
    pub digest: String,
    /// The definition.
    pub definition: Definition,
    /// Its JSON, as stored in `definitions.body` and read into states.
    pub json: Value,
    stored: AtomicBool,
}

impl Pin {
    /// Pins `definition`: its digest is that of its JSON (keys sorted), so the same
    /// definition has the same pin in every process.
    #[must_use]
    pub fn new(definition: Definition) -> Self {
        let json = serde_json::to_value(&definition).unwrap_or(Value::Null);
        let digest = hex(&Sha256::digest(json.to_string()));
        Self {
            digest,
            definition,
            json,
            stored: AtomicBool::new(false),
        }
    }

    /// Whether the `definitions` table is known to hold it: a context may name it only then.
    #[must_use]
    pub fn is_stored(&self) -> bool {
        self.stored.load(Ordering::Relaxed)
    }

    /// Records that the `definitions` table holds it.
    pub fn mark_stored(&self) {
        self.stored.store(true, Ordering::Relaxed);
    }
}

impl PartialEq for Pin {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The definitions one process knows, by pin.
#[derive(Debug, Default)]
pub struct Pins {
    by_digest: RwLock<HashMap<String, Arc<Pin>>>,
}

impl Pins {
    /// The pin of `digest`, if known here.
    #[must_use]
    pub fn get(&self, digest: &str) -> Option<Arc<Pin>> {
        self.by_digest
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(digest)
            .cloned()
    }

    /// Adds `pin` under `digest` (its own, or the one a store row names); the one already
    /// there if any.
    pub fn insert(&self, digest: String, pin: Pin) -> Arc<Pin> {
        self.by_digest
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(digest)
            .or_insert_with(|| Arc::new(pin))
            .clone()
    }

    /// The pin of `definition`, added if new.
    pub fn of(&self, definition: &Definition) -> Arc<Pin> {
        let pin = Pin::new(definition.clone());
        match self.get(&pin.digest) {
            Some(known) => known,
            None => self.insert(pin.digest.clone(), pin),
        }
    }

    /// Every pin known here.
    #[must_use]
    pub fn all(&self) -> Vec<Arc<Pin>> {
        self.by_digest
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// A field of [`Workflow::rebuild`]'s answer.
pub(crate) fn field(name: &'static str, value: &impl Serialize) -> (&'static str, Value) {
    // Plain data types: serializing cannot fail. Were it to, `Null` fails the read with
    // the field named rather than passing silently.
    (name, serde_json::to_value(value).unwrap_or(Value::Null))
}

/// The error of a rebuild without the pinned definition a kind needs.
pub(crate) fn no_definition() -> InputErrors {
    InputErrors::from(vec![finfra_api::validate::FieldError {
        path: "definition".into(),
        message: "the workflow's context names no pinned definition".into(),
    }])
}

/// Reads a stored state of kind `W`: the context's fields, its pinned definition, and the
/// fields rebuilt from the input, deserialized together without copying the context.
pub(crate) fn read<W: Workflow>(
    pins: &Pins,
    stored: Stored<'_>,
) -> Result<(W::State, Option<Arc<Pin>>), EngineError> {
    let state_error = |source| EngineError::State {
        kind: W::KIND,
        source,
    };
    let context = stored.context.as_object().ok_or_else(|| {
        state_error(<serde_json::Error as serde::de::Error>::custom(
            "the context is not a JSON object",
        ))
    })?;
    let pin = match context.get("definition") {
        Some(Value::String(digest)) => {
            Some(
                pins.get(digest)
                    .ok_or_else(|| EngineError::UnknownDefinition {
                        digest: digest.clone(),
                    })?,
            )
        }
        // Written by an earlier build, inline: pinned here so the next write can name it.
        Some(inline @ Value::Object(_)) => {
            Some(pins.of(&Definition::deserialize(inline).map_err(state_error)?))
        }
        _ => None,
    };
    let fresh;
    let rebuilt: &[(&'static str, Value)] =
        if W::REBUILT.iter().all(|name| context.contains_key(*name)) {
            &[] // an earlier build's context, with the request inline
        } else if let Some(kept) = stored.rebuilt.and_then(|cache| cache.0.get()) {
            kept
        } else {
            let started_at = context
                .get("started_at")
                .map(DateTime::<Utc>::deserialize)
                .transpose()
                .map_err(state_error)?
                .unwrap_or_default();
            let fields = W::rebuild(
                stored.input,
                pin.as_deref().map(|p| &p.definition),
                started_at,
            )
            .map_err(|source| EngineError::Rebuild {
                kind: W::KIND,
                source,
            })?;
            match stored.rebuilt {
                Some(cache) => cache.0.get_or_init(|| fields),
                None => {
                    fresh = fields;
                    &fresh
                }
            }
        };
    let fields = context
        .iter()
        .map(|(name, value)| match (name.as_str(), &pin) {
            ("definition", Some(pin)) => ("definition", &pin.json),
            (name, _) => (name, value),
        })
        .chain(rebuilt.iter().map(|(name, value)| (*name, value)));
    let state = W::State::deserialize(MapDeserializer::<_, serde_json::Error>::new(fields))
        .map_err(state_error)?;
    Ok((state, pin))
}

/// The context to store for `state`: without the rebuilt fields, naming its definition by
/// `pin`.
pub(crate) fn slim<W: Workflow>(state: &W::State, pin: Option<&Pin>) -> Result<Value, EngineError> {
    let value = serde_json::to_value(state).map_err(|source| EngineError::State {
        kind: W::KIND,
        source,
    })?;
    let Value::Object(mut map) = value else {
        return Ok(value);
    };
    for name in W::REBUILT {
        map.remove(*name);
    }
    if let Some(pin) = pin {
        map.insert("definition".into(), Value::String(pin.digest.clone()));
    }
    Ok(Value::Object(map))
}

/// Whether `context` is in the slim form (or not a started workflow's).
#[must_use]
pub fn is_slim(context: &Value) -> bool {
    !matches!(context.get("definition"), Some(Value::Object(_))) && context.get("request").is_none()
}
