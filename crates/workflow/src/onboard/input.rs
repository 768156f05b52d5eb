//! The input of `onboard-borrower`, checked at submit time with every problem listed.
//!
//! ```json
//! {
//!   "definition": "personal-single-payment",        // or "personal-single-payment@2"
//!   "borrower": { ...the reference's create-borrower body... },
//!   "ekyc": {"ktp_image": "<base64 or URL>", "selfie": "<base64 or URL>"},
//!   "documents": [
//!     {"type": "NPWP", "path": "/srv/uploads/npwp.pdf", "content_type": "application/pdf",
//!      "number": "012345678901000", "filename": "npwp.pdf", "description": "2024"},
//!     {"type": "FINANCE_REPORT", "base64": "JVBERi0...", "content_type": "application/pdf"}
//!   ]
//! }
//! ```
//!
//! - `ekyc` is required when the definition enables e-KYC, and refused otherwise.
//! - `documents` are uploaded through the two-step document flow before the borrower is
//!   created; each fills the matching slot of `borrower.authorised_signatory.documents`
//!   (`KTP` → `ktp`, `NPWP` → `npwp`, ...) with its Finfra document id, so that slot's
//!   `file` may be left out of the body. One upload per type. Give the file as a `path` on
//!   the workers' file system or as `base64`, not both. An `NPWP` upload for a body without
//!   `documents.npwp` needs its `number`.
//! - The definition's `required_documents` must each be uploaded or in the body.
//! - Dates are checked against the submit day: birth dates in the past, the KTP expiry in
//!   the future.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use finfra_api::model::borrower::CreateBorrower;
use finfra_api::model::document::DocumentType;
use finfra_api::validate::{self, FieldError, Validate};

use crate::definition::{Definition, Resolver};
use crate::ids::Nik;
use crate::machine::InputErrors;
use crate::request::FileSource;

use super::schema;

/// The validated input, minus the definition (which sits beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnboardRequest {
    /// The create-borrower body (document files replaced by uploads when created).
    pub body: CreateBorrower,
    /// The signatory's NIK: correlates `user_created` and reads the credit history.
    pub nik: Nik,
    /// e-KYC images, when the definition uses e-KYC.
    pub ekyc: Option<EkycInput>,
    /// Documents to upload before creating the borrower.
    pub documents: Vec<DocumentUpload>,
}

/// A validated input: the definition it pinned and the request.
#[derive(Debug, Clone, PartialEq)]
pub struct OnboardInput {
    /// The definition, resolved from the registry.
    pub definition: Definition,
    /// What to onboard.
    pub request: OnboardRequest,
}

/// The e-KYC images.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EkycInput {
    /// The KTP image for OCR: base64 or a URL.
    pub ktp_image: String,
    /// The selfie for liveness and face match: base64 or a URL.
    pub selfie: String,
}

impl fmt::Debug for EkycInput {
    // Images of a person's ID card and face.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EkycInput")
            .field(
                "ktp_image",
                &format_args!("<{} chars>", self.ktp_image.len()),
            )
            .field("selfie", &format_args!("<{} chars>", self.selfie.len()))
            .finish()
    }
}

/// A document to upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentUpload {
    /// Its type: which slot of the create body it fills.
    pub r#type: DocumentType,
    /// Where the bytes are.
    pub source: FileSource,
    /// The file name announced to Finfra.
    pub filename: String,
    /// Its MIME type.
    pub content_type: String,
    /// Finfra's optional description.
    pub description: Option<String>,
    /// For `NPWP`: the tax number, when the body has no `documents.npwp`.
    pub number: Option<String>,
}

/// The slot of `authorised_signatory.documents` a document type fills.
#[must_use]
pub fn slot(kind: &DocumentType) -> Option<&'static str> {
    match kind {
        DocumentType::Ktp => Some("ktp"),
        DocumentType::Selfie => Some("selfie"),
        DocumentType::Npwp => Some("npwp"),
        DocumentType::SelfieWithKtp => Some("selfie_with_ktp"),
        DocumentType::StockImages => Some("stock_images"),
        DocumentType::FinanceReport => Some("finance_report"),
        DocumentType::Unknown(_) => None,
    }
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

const TOP_LEVEL: &[&str] = &["definition", "borrower", "ekyc", "documents"];

/// Validates an `onboard-borrower` input (see the module docs).
///
/// # Errors
///
/// [`InputErrors`] listing every problem, by path.
pub fn validate(
    input: &Value,
    definitions: Resolver<'_>,
    now: DateTime<Utc>,
) -> Result<OnboardInput, InputErrors> {
    let mut e = Errors(Vec::new());
    let Some(top) = input.as_object() else {
        e.push("input", "must be a JSON object");
        return Err(InputErrors::from(e.0));
    };
    for key in top.keys().filter(|k| !TOP_LEVEL.contains(&k.as_str())) {
        e.push(key.as_str(), "is not a known field");
    }
    let definition = match top.get("definition").and_then(Value::as_str) {
        None => {
            e.push(
                "definition",
                "is required: the name of a workflows/*.toml definition",
            );
            None
        }
        Some(spec) => match definitions.resolve(spec) {
            Ok(definition) => Some(definition),
            Err(message) => {
                e.push("definition", message);
                None
            }
        },
    };
    let documents = documents(top.get("documents"), &mut e);
    let ekyc = ekyc(top.get("ekyc"), &mut e);
    let borrower = match top.get("borrower") {
        None | Some(Value::Null) => {
            e.push("borrower", "is required: the create-borrower body");
            None
        }
        Some(body) => borrower(body, &documents, now, &mut e),
    };
    if let Some(definition) = definition {
        against_definition(
            definition,
            borrower.as_ref(),
            ekyc.as_ref(),
            &documents,
            &mut e,
        );
    }
    match (definition, borrower) {
        (Some(definition), Some((body, nik))) if e.0.is_empty() => Ok(OnboardInput {
            definition: definition.clone(),
            request: OnboardRequest {
                body,
                nik,
                ekyc,
                documents,
            },
        }),
        _ => Err(InputErrors::from(e.0)),
    }
}

fn documents(value: Option<&Value>, e: &mut Errors) -> Vec<DocumentUpload> {
    let items = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            e.push("documents", "must be a list");
            return Vec::new();
        }
    };
    let mut out: Vec<DocumentUpload> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("documents[{i}]");
        let Some(map) = item.as_object() else {
            e.push(path, "must be an object");
            continue;
        };
        if let Some(upload) = document(map, &path, e) {
            if out.iter().any(|d| d.r#type == upload.r#type) {
                e.push(
                    format!("{path}.type"),
                    format!("repeats {}: one upload per type", upload.r#type),
                );
            } else {
                out.push(upload);
            }
        }
    }
    out
}

const DOCUMENT_KEYS: &[&str] = &[
    "type",
    "path",
    "base64",
    "content_type",
    "filename",
    "description",
    "number",
];

fn document(map: &Map<String, Value>, path: &str, e: &mut Errors) -> Option<DocumentUpload> {
    for key in map.keys().filter(|k| !DOCUMENT_KEYS.contains(&k.as_str())) {
        e.push(format!("{path}.{key}"), "is not a known field");
    }
    let text = |key: &str, e: &mut Errors, required: bool| -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => {
                if required {
                    e.push(format!("{path}.{key}"), "is required");
                }
                None
            }
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(_) => {
                e.push(format!("{path}.{key}"), "must be a non-empty string");
                None
            }
        }
    };
    let kind = text("type", e, true).map(|t| DocumentType::from(t.as_str()));
    if let Some(DocumentType::Unknown(other)) = &kind {
        e.push(
            format!("{path}.type"),
            format!(
                "must be one of {} (got {other:?})",
                DocumentType::KNOWN.join(", ")
            ),
        );
    }
    let source = match (text("path", e, false), text("base64", e, false)) {
        (Some(file), None) => Some(FileSource::Path(file)),
        (None, Some(data)) => Some(FileSource::Base64(data)),
        (Some(_), Some(_)) => {
            e.push(path, "must give either path or base64, not both");
            None
        }
        (None, None) => {
            e.push(path, "must give the file as path or base64");
            None
        }
    };
    let content_type = text("content_type", e, true);
    if let Some(ct) = &content_type
        && !is_mime(ct)
    {
        e.push(
            format!("{path}.content_type"),
            "must be a MIME type such as application/pdf",
        );
    }
    let number = text("number", e, false);
    if let (Some(number), Some(kind)) = (&number, &kind) {
        if *kind == DocumentType::Npwp {
            if let Err(message) = validate::npwp(number) {
                e.push(format!("{path}.number"), message);
            }
        } else {
            e.push(format!("{path}.number"), "is only for NPWP");
        }
    }
    let description = text("description", e, false);
    let filename = text("filename", e, false);
    let (kind, source, content_type) = (kind?, source?, content_type?);
    let filename = filename.unwrap_or_else(|| match &source {
        FileSource::Path(p) => p.rsplit(['/', '\\']).next().unwrap_or(p).to_owned(),
        FileSource::Base64(_) => kind.as_str().to_lowercase(),
    });
    Some(DocumentUpload {
        r#type: kind,
        source,
        filename,
        content_type,
        description,
        number,
    })
}

fn is_mime(value: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence
        .split_once('/')
        .is_some_and(|(kind, subtype)| token(kind) && token(subtype))
}

fn ekyc(value: Option<&Value>, e: &mut Errors) -> Option<EkycInput> {
    let map = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Object(map)) => map,
        Some(_) => {
            e.push("ekyc", "must be an object");
            return None;
        }
    };
    for key in map
        .keys()
        .filter(|k| !["ktp_image", "selfie"].contains(&k.as_str()))
    {
        e.push(format!("ekyc.{key}"), "is not a known field");
    }
    let mut image = |key: &str| match map.get(key).and_then(Value::as_str) {
        Some(s) if !s.trim().is_empty() => Some(s.to_owned()),
        _ => {
            e.push(format!("ekyc.{key}"), "is required: base64 or a URL");
            None
        }
    };
    let ktp_image = image("ktp_image");
    let selfie = image("selfie");
    Some(EkycInput {
        ktp_image: ktp_image?,
        selfie: selfie?,
    })
}

/// Fills the slots that uploads will fill, so the body's shape check accepts a slot
/// without `file` (the upload's id replaces it when the borrower is created).
fn with_upload_slots(body: &Value, uploads: &[DocumentUpload]) -> Value {
    let mut body = body.clone();
    let Some(docs) = body
        .get_mut("authorised_signatory")
        .and_then(|s| s.get_mut("documents"))
        .and_then(Value::as_object_mut)
    else {
        return body;
    };
    for upload in uploads {
        let Some(name) = slot(&upload.r#type) else {
            continue;
        };
        let entry = docs
            .entry(name)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(entry) = entry.as_object_mut() {
            entry
                .entry("file")
                .or_insert_with(|| Value::String(format!("upload:{}", upload.r#type)));
            if let Some(number) = &upload.number {
                entry
                    .entry("number")
                    .or_insert_with(|| Value::String(number.clone()));
            }
        }
    }
    body
}

fn borrower(
    value: &Value,
    uploads: &[DocumentUpload],
    now: DateTime<Utc>,
    e: &mut Errors,
) -> Option<(CreateBorrower, Nik)> {
    let checked = schema::check_body(&with_upload_slots(value, uploads), "borrower");
    let structural = checked.errors;
    let body: CreateBorrower = match serde_json::from_value(checked.repaired) {
        Ok(body) => body,
        Err(err) => {
            // The shape check should make this impossible; report rather than panic.
            e.0.extend(structural);
            e.push("borrower", format!("could not be read: {err}"));
            return None;
        }
    };
    let mut content = Vec::new();
    if let Err(errors) = body.validate() {
        content.extend(errors.errors().iter().map(|f| FieldError {
            path: format!("borrower.{}", f.path),
            message: f.message.clone(),
        }));
    }
    dates(&body, now.date_naive(), &mut content);
    content.retain(|f| !schema::covered(&f.path, &structural));
    let ok = structural.is_empty() && content.is_empty();
    e.0.extend(structural);
    e.0.extend(content);
    if !ok {
        return None;
    }
    let nik = Nik::new(body.authorised_signatory.documents.ktp.number.clone()).ok()?;
    Some((body, nik))
}

/// The checks that need today's date (`finfra_api::validate` has no clock).
fn dates(body: &CreateBorrower, today: NaiveDate, out: &mut Vec<FieldError>) {
    let mut check = |path: &str, result: Result<(), String>| {
        if let Err(message) = result {
            out.push(FieldError {
                path: format!("borrower.{path}"),
                message,
            });
        }
    };
    let s = &body.authorised_signatory;
    check(
        "authorised_signatory.birth_date",
        validate::past_date(s.birth_date, today),
    );
    if let Some(date) = s.spouse_date_of_birth {
        check(
            "authorised_signatory.spouse_date_of_birth",
            validate::past_date(date, today),
        );
    }
    if let Some(date) = s.documents.ktp.expiry_date {
        check(
            "authorised_signatory.documents.ktp.expiry_date",
            validate::future_date(date, today),
        );
    }
    if let Some(entity) = &body.entity {
        // Today is a valid establishment or deed date; tomorrow is not.
        let not_future = |date: NaiveDate| {
            if date > today {
                Err(format!("must not be after {today}"))
            } else {
                Ok(())
            }
        };
        check(
            "entity.establishment_date",
            not_future(entity.establishment_date),
        );
        check("entity.deed_date", not_future(entity.deed_date));
    }
}

fn against_definition(
    definition: &Definition,
    borrower: Option<&(CreateBorrower, Nik)>,
    ekyc: Option<&EkycInput>,
    uploads: &[DocumentUpload],
    e: &mut Errors,
) {
    let policy = &definition.onboarding;
    let name = &definition.name;
    if let Some((body, _)) = borrower
        && body.r#type != policy.borrower_type
    {
        e.push(
            "borrower.type",
            format!("must be {} for definition {name}", policy.borrower_type),
        );
    }
    match (policy.ekyc.enabled, ekyc) {
        (true, None) => e.push("ekyc", format!("is required: definition {name} uses e-KYC")),
        (false, Some(_)) => e.push(
            "ekyc",
            format!("must be absent: definition {name} does not use e-KYC"),
        ),
        (true, Some(_)) | (false, None) => {}
    }
    for required in &policy.required_documents {
        let uploaded = uploads.iter().any(|u| &u.r#type == required);
        let in_body = borrower.is_some_and(|(body, _)| in_body(body, required));
        if !uploaded && !in_body {
            let slot = slot(required).unwrap_or("?");
            e.push(
                "documents",
                format!(
                    "must include {required}: definition {name} requires it (or give it in borrower.authorised_signatory.documents.{slot})"
                ),
            );
        }
    }
}

fn in_body(body: &CreateBorrower, kind: &DocumentType) -> bool {
    let docs = &body.authorised_signatory.documents;
    match kind {
        DocumentType::Ktp | DocumentType::Selfie => true,
        DocumentType::Npwp => docs.npwp.is_some(),
        DocumentType::SelfieWithKtp => docs.selfie_with_ktp.is_some(),
        DocumentType::StockImages => docs.stock_images.is_some(),
        DocumentType::FinanceReport => docs.finance_report.is_some(),
        DocumentType::Unknown(_) => false,
    }
}
