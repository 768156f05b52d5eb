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
//!   `workflows.input` by [`Workflow::rebuild`] (once per holder, [`Rebuilt`]): the input
//!   validated against the pinned definition as at `started_at`, which gives exactly what
//!   start got.
//!
//! A context written by an earlier build, with both inline, still reads as it is; the next
//! step writes it slim (and the executor stores its definition first, see
//! [`Pin::is_stored`]).
//!
//! Between the decisions of one holder the state need not be read back at all: the one a
//! committed decision left stays in memory for the next ([`Typed`]).

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
    /// The state itself as the last committed decision left it, kept by its holder.
    pub typed: Option<&'a Typed>,
}

impl<'a> Stored<'a> {
    /// A stored workflow.
    #[must_use]
    pub fn new(context: &'a Value, input: &'a Value) -> Self {
        Self {
            context,
            input,
            rebuilt: None,
            typed: None,
        }
    }

    /// A stored workflow whose rebuilt fields are kept in `rebuilt` for the next decisions
    /// (the executor's, for as long as it holds the workflow: the input and the pinned
    /// definition do not change, so neither do they), and whose state is kept in `typed`
    /// from one committed decision to the next (see [`Typed`]).
    #[must_use]
    pub fn cached(
        context: &'a Value,
        input: &'a Value,
        rebuilt: &'a Rebuilt,
        typed: &'a Typed,
    ) -> Self {
        Self {
            context,
            input,
            rebuilt: Some(rebuilt),
            typed: Some(typed),
        }
    }
}

/// A holder's state in memory, as the engine decided it, so that the next decision need not
/// read it back from the context it was just written to (a step continued inline decides
/// again at once). A decision proposes its new state (`Engine::decide` with
/// [`Stored::cached`], `Engine::start_kept`); the holder confirms it once that decision is
/// committed ([`Typed::confirm`]), and the state is then what the stored context reads as.
/// The next decision takes it (a decision that finds none reads the context). A holder that
/// commits a decision made otherwise must not confirm: the proposal would be another
/// decision's. In debug builds every state taken is checked against the context it stands
/// for.
#[derive(Default)]
pub struct Typed(std::sync::Mutex<TypedSlots>);

#[derive(Default)]
struct TypedSlots {
    confirmed: Option<Box<dyn std::any::Any + Send>>,
    proposed: Option<Box<dyn std::any::Any + Send>>,
}

impl std::fmt::Debug for Typed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Typed")
    }
}

impl Typed {
    /// The last decision's state is committed: the next decision starts from it.
    pub fn confirm(&self) {
        let mut slots = self.slots();
        slots.confirmed = slots.proposed.take();
    }

    /// The confirmed state, if it is a state of type `S` (a workflow kind's).
    pub(crate) fn take<S: 'static>(&self) -> Option<(S, Option<Arc<Pin>>)> {
        let kept = self.slots().confirmed.take()?;
        kept.downcast::<(S, Option<Arc<Pin>>)>()
            .ok()
            .map(|kept| *kept)
    }

    pub(crate) fn propose<S: Send + 'static>(&self, state: S, pin: Option<Arc<Pin>>) {
        self.slots().proposed = Some(Box::new((state, pin)));
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, TypedSlots> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
/// `pin`, and without the members that are `null` (see [`lean`]). Serialized field by field
/// into the context: the request and the definition, most of a state's size, are never
/// turned into JSON only to be dropped.
pub(crate) fn slim<W: Workflow>(state: &W::State, pin: Option<&Pin>) -> Result<Value, EngineError> {
    state
        .serialize(Slim {
            skip: W::REBUILT,
            pin: pin.map(|p| p.digest.as_str()),
        })
        .map_err(|source| EngineError::State {
            kind: W::KIND,
            source,
        })
}

/// Leaves out of `value`, at every depth, the members of its objects that are `null`, and
/// says whether anything is left of it (`false` for a `null` itself).
///
/// A state's `null`s are its fields' `None`s: no state holds raw JSON, a unit or a map of
/// options, and a field of type `Option` that is missing reads as `None` (serde's derive),
/// so the state read back is the state written (in debug builds every state kept in memory
/// is compared with the context it was stored as). A context is written on every step:
/// about an eighth of an onboarding's was `null`s (`"kyc_id": null`, ...). Contexts
/// written with their `null`s, by earlier builds, read as before, and the builds before
/// read these (a missing `Option` field is `None` to them too).
fn lean(value: &mut Value) -> bool {
    match value {
        Value::Null => false,
        Value::Object(members) => {
            members.retain(|_, member| lean(member));
            true
        }
        Value::Array(items) => {
            for item in items {
                lean(item);
            }
            true
        }
        _ => true,
    }
}

/// Serializes a state (a struct) into its stored context: each field as
/// `serde_json::to_value` would, [`lean`], except the fields named in `skip`, left out, and
/// `definition`, given as `pin` when there is one.
struct Slim<'a> {
    skip: &'static [&'static str],
    pin: Option<&'a str>,
}

/// The fields of the state being written.
struct SlimFields<'a> {
    slim: Slim<'a>,
    fields: serde_json::Map<String, Value>,
}

impl serde::ser::SerializeStruct for SlimFields<'_> {
    type Ok = Value;
    type Error = serde_json::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Self::Error> {
        let mut value = match (key, self.slim.pin) {
            (key, _) if self.slim.skip.contains(&key) => return Ok(()),
            ("definition", Some(pin)) => Value::String(pin.to_owned()),
            _ => serde_json::to_value(value)?,
        };
        if lean(&mut value) {
            self.fields.insert(key.to_owned(), value);
        }
        Ok(())
    }

    fn end(self) -> Result<Value, Self::Error> {
        Ok(Value::Object(self.fields))
    }
}

/// Every shape but a struct: a state that is not one is a bug of its kind, named as such.
macro_rules! not_a_struct {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ok, Self::Error> {
            Err(<serde_json::Error as serde::ser::Error>::custom(
                "a workflow's state must serialize as a struct",
            ))
        }
    )*};
}

impl<'a> serde::Serializer for Slim<'a> {
    type Ok = Value;
    type Error = serde_json::Error;
    type SerializeSeq = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeTuple = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeTupleStruct = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeTupleVariant = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeMap = serde::ser::Impossible<Value, serde_json::Error>;
    type SerializeStruct = SlimFields<'a>;
    type SerializeStructVariant = serde::ser::Impossible<Value, serde_json::Error>;

    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SlimFields<'a>, Self::Error> {
        Ok(SlimFields {
            slim: self,
            fields: serde_json::Map::with_capacity(len),
        })
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Value, Self::Error> {
        self.serialize_unit()
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Value, Self::Error> {
        self.serialize_unit()
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Value, Self::Error> {
        self.serialize_unit()
    }

    not_a_struct! {
        serialize_bool(bool) -> Value;
        serialize_i8(i8) -> Value;
        serialize_i16(i16) -> Value;
        serialize_i32(i32) -> Value;
        serialize_i64(i64) -> Value;
        serialize_u8(u8) -> Value;
        serialize_u16(u16) -> Value;
        serialize_u32(u32) -> Value;
        serialize_u64(u64) -> Value;
        serialize_f32(f32) -> Value;
        serialize_f64(f64) -> Value;
        serialize_char(char) -> Value;
        serialize_str(&str) -> Value;
        serialize_bytes(&[u8]) -> Value;
        serialize_none() -> Value;
        serialize_unit() -> Value;
        serialize_unit_struct(&'static str) -> Value;
        serialize_unit_variant(&'static str, u32, &'static str) -> Value;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

/// Whether `context` is in the slim form (or not a started workflow's).
#[must_use]
pub fn is_slim(context: &Value) -> bool {
    !matches!(context.get("definition"), Some(Value::Object(_))) && context.get("request").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proposed state is kept only once confirmed, is taken once, and only as its type.
    #[test]
    fn a_kept_state_is_confirmed_before_it_is_taken_and_taken_once() {
        let typed = Typed::default();
        typed.propose("a state".to_owned(), None);
        assert!(typed.take::<String>().is_none(), "not confirmed");
        typed.confirm();
        assert_eq!(
            typed.take::<String>().map(|(s, _)| s).as_deref(),
            Some("a state")
        );
        assert!(typed.take::<String>().is_none(), "taken already");
        typed.propose("another".to_owned(), None);
        typed.confirm();
        assert!(typed.take::<u32>().is_none(), "another kind's state");
        typed.confirm();
        assert!(
            typed.take::<String>().is_none(),
            "a confirm with nothing proposed"
        );
    }
}
