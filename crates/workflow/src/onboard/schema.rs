//! The shape of the reference's create-borrower body, checked on the JSON before it is
//! deserialized, so that every missing field, wrong type and unknown key is reported at
//! once, by path (serde stops at the first problem and names no path).
//!
//! What is wrong is also *repaired* with a placeholder, so that the body can still be
//! deserialized and put through `finfra_api`'s `Validate` for the content rules (NIK
//! format, phone numbers, ...); errors on repaired paths are then dropped, so each problem
//! is reported once.

use chrono::NaiveDate;
use serde_json::{Map, Value};

use finfra_api::validate::FieldError;

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Date,
    Int,
    /// `"true"` or `"false"`, a string (CONTRACT §1: a JSON boolean gets `400`).
    BoolStr,
    Obj(&'static [Field]),
    Arr(&'static [Field]),
}

#[derive(Clone, Copy)]
struct Field {
    name: &'static str,
    ty: Ty,
    required: bool,
}

const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

const ADDRESS: &[Field] = &[
    req("street_address", Ty::Str),
    req("rt", Ty::Str),
    req("rw", Ty::Str),
    req("province", Ty::Str),
    req("city", Ty::Str),
    req("district", Ty::Str),
    req("village", Ty::Str),
    req("postal_code", Ty::Str),
    opt("country", Ty::Str),
];

const BANK_ACCOUNT: &[Field] = &[
    req("holder_name", Ty::Str),
    req("number", Ty::Str),
    req("swift_code", Ty::Str),
];

const KTP: &[Field] = &[
    req("number", Ty::Str),
    req("file", Ty::Str),
    opt("issuing_city", Ty::Str),
    opt("expiry_date", Ty::Date),
];

const FILE: &[Field] = &[req("file", Ty::Str)];

const NPWP: &[Field] = &[req("number", Ty::Str), req("file", Ty::Str)];

const DOCUMENTS: &[Field] = &[
    req("ktp", Ty::Obj(KTP)),
    req("selfie", Ty::Obj(FILE)),
    opt("npwp", Ty::Obj(NPWP)),
    opt("selfie_with_ktp", Ty::Obj(FILE)),
    opt("stock_images", Ty::Obj(FILE)),
    opt("finance_report", Ty::Obj(FILE)),
];

const SIGNATORY: &[Field] = &[
    req("first_name", Ty::Str),
    req("last_name", Ty::Str),
    req("birth_date", Ty::Date),
    req("birth_place", Ty::Str),
    req("email", Ty::Str),
    req("mother_maiden_name", Ty::Str),
    req("marital_status", Ty::Str),
    req("gender", Ty::Str),
    req("title", Ty::Str),
    req("domicile", Ty::Str),
    req("religion", Ty::Str),
    req("job", Ty::Str),
    req("education", Ty::Str),
    req("address", Ty::Obj(ADDRESS)),
    req("mobile_number", Ty::Str),
    opt("bank_account", Ty::Arr(BANK_ACCOUNT)),
    req("documents", Ty::Obj(DOCUMENTS)),
    opt("business_type", Ty::Str),
    req("monthly_income_range", Ty::Str),
    req("emergency_contact_name", Ty::Str),
    req("emergency_contact_number", Ty::Str),
    req("housing_status", Ty::Str),
    req("source_of_fund", Ty::Str),
    req("place_of_work", Ty::Str),
    req("work_address", Ty::Str),
    opt("number_of_dependents", Ty::Int),
    opt("spouse_identification_number", Ty::Str),
    opt("spouse_name", Ty::Str),
    opt("spouse_date_of_birth", Ty::Date),
    opt("prenuptial_agreement", Ty::BoolStr),
];

const MANAGEMENT: &[Field] = &[
    req("name", Ty::Str),
    req("position", Ty::Str),
    req("email_address", Ty::Str),
    req("mobile_number", Ty::Str),
    req("address", Ty::Str),
    req("gender", Ty::Str),
    req("identity_number", Ty::Str),
];

const ENTITY: &[Field] = &[
    req("name", Ty::Str),
    req("address", Ty::Obj(ADDRESS)),
    req("phone_number", Ty::Str),
    opt("fax", Ty::Str),
    req("email", Ty::Str),
    req("business_type", Ty::Str),
    req("industry", Ty::Str),
    req("nationality", Ty::Str),
    req("residence", Ty::Str),
    req("npwp", Ty::Str),
    opt("phone_ext", Ty::Str),
    req("legal_entity", Ty::Str),
    req("establishment_date", Ty::Date),
    req("establishment_place", Ty::Str),
    req("deed_date", Ty::Date),
    req("deed_number", Ty::Str),
    req("managements", Ty::Arr(MANAGEMENT)),
];

const BODY: &[Field] = &[
    req("type", Ty::Str),
    opt("entity", Ty::Obj(ENTITY)),
    req("authorised_signatory", Ty::Obj(SIGNATORY)),
];

/// The result of the structural check.
pub(super) struct Checked {
    /// The body with every problem replaced by a placeholder and unknown keys removed.
    pub repaired: Value,
    /// The problems, with `prefix` on their paths.
    pub errors: Vec<FieldError>,
}

/// Checks `body` (found at `prefix` in the input) against the create-borrower shape.
pub(super) fn check_body(body: &Value, prefix: &str) -> Checked {
    let mut repaired = body.clone();
    let mut errors = Vec::new();
    check_object(&mut repaired, BODY, prefix, &mut errors);
    Checked { repaired, errors }
}

/// Whether `path` is `reported` or lies under it.
pub(super) fn covered(path: &str, reported: &[FieldError]) -> bool {
    reported.iter().any(|r| {
        path == r.path
            || path
                .strip_prefix(r.path.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn push(errors: &mut Vec<FieldError>, path: String, message: &str) {
    errors.push(FieldError {
        path,
        message: message.to_owned(),
    });
}

fn check_object(
    value: &mut Value,
    fields: &'static [Field],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let Value::Object(map) = value else {
        push(errors, path.to_owned(), "must be an object");
        *value = placeholder(Ty::Obj(fields));
        return;
    };
    let unknown: Vec<String> = map
        .keys()
        .filter(|k| !fields.iter().any(|f| f.name == k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        push(errors, join(path, &key), "is not a known field");
        map.remove(&key);
    }
    for field in fields {
        let field_path = join(path, field.name);
        match map.get_mut(field.name) {
            // CONTRACT §1: an optional field sent as null counts as absent.
            None | Some(Value::Null) if !field.required => {
                map.remove(field.name);
            }
            None | Some(Value::Null) => {
                push(errors, field_path, "is required");
                map.insert(field.name.to_owned(), placeholder(field.ty));
            }
            Some(present) => check_value(present, field.ty, &field_path, errors),
        }
    }
}

fn check_value(value: &mut Value, ty: Ty, path: &str, errors: &mut Vec<FieldError>) {
    let problem = match ty {
        Ty::Str => (!value.is_string()).then_some("must be a string"),
        Ty::Date => {
            let ok = value
                .as_str()
                .is_some_and(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok());
            (!ok).then_some("must be a date YYYY-MM-DD")
        }
        Ty::Int => (!value.is_u64()).then_some("must be a whole number"),
        Ty::BoolStr => {
            let ok = matches!(value.as_str(), Some("true" | "false"));
            (!ok).then_some("must be the string \"true\" or \"false\"")
        }
        Ty::Obj(fields) => {
            check_object(value, fields, path, errors);
            None
        }
        Ty::Arr(fields) => match value {
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    check_object(item, fields, &format!("{path}[{i}]"), errors);
                }
                None
            }
            _ => Some("must be a list"),
        },
    };
    if let Some(message) = problem {
        push(errors, path.to_owned(), message);
        *value = placeholder(ty);
    }
}

/// A value of type `ty` that deserializes (its content is never used: the path was
/// reported).
fn placeholder(ty: Ty) -> Value {
    match ty {
        Ty::Str => Value::String("x".to_owned()),
        Ty::Date => Value::String("2000-01-01".to_owned()),
        Ty::Int => Value::from(0),
        Ty::BoolStr => Value::String("false".to_owned()),
        Ty::Arr(_) => Value::Array(Vec::new()),
        Ty::Obj(fields) => Value::Object(
            fields
                .iter()
                .filter(|f| f.required)
                .map(|f| (f.name.to_owned(), placeholder(f.ty)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reports_every_structural_problem_and_repairs_them() {
        let body = json!({
            "type": "PERSONAL",
            "colour": "blue",
            "authorised_signatory": {
                "first_name": 7,
                "birth_date": "01-11-1995",
                "prenuptial_agreement": true,
                "spouse_name": null,
                "documents": {"ktp": {"number": "3275062009921981"}}
            }
        });
        let checked = check_body(&body, "borrower");
        let paths: Vec<&str> = checked.errors.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "borrower.colour",
            "borrower.authorised_signatory.first_name",
            "borrower.authorised_signatory.birth_date",
            "borrower.authorised_signatory.prenuptial_agreement",
            "borrower.authorised_signatory.last_name",
            "borrower.authorised_signatory.address",
            "borrower.authorised_signatory.documents.ktp.file",
            "borrower.authorised_signatory.documents.selfie",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
        assert!(!paths.contains(&"borrower.authorised_signatory.spouse_name"));
        let parsed: Result<finfra_api::model::borrower::CreateBorrower, _> =
            serde_json::from_value(checked.repaired);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn coverage_is_by_path_prefix() {
        let reported = [FieldError {
            path: "borrower.entity".into(),
            message: "must be an object".into(),
        }];
        assert!(covered("borrower.entity", &reported));
        assert!(covered("borrower.entity.managements[0].name", &reported));
        assert!(!covered("borrower.entity_x", &reported));
    }
}
