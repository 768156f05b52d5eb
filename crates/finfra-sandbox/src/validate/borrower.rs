//! The Create Borrower body (reference "Create Borrower", CONTRACT §3), field by field.

use serde_json::Value;

use super::{Checker, Object, Rule, index, join};
use crate::error::ApiError;

const BORROWER_TYPES: &[&str] = &["PERSONAL", "BUSINESS"];
const MARITAL_STATUSES: &[&str] = &["MARRIED", "SINGLE", "DIVORCED", "WIDOWED"];
const GENDERS: &[&str] = &["MALE", "FEMALE"];

const TOP_FIELDS: &[&str] = &["type", "entity", "authorised_signatory"];
const SIGNATORY_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "birth_date",
    "birth_place",
    "email",
    "mother_maiden_name",
    "marital_status",
    "gender",
    "title",
    "domicile",
    "religion",
    "job",
    "education",
    "address",
    "mobile_number",
    "bank_account",
    "documents",
    "business_type",
    "monthly_income_range",
    "emergency_contact_name",
    "emergency_contact_number",
    "housing_status",
    "source_of_fund",
    "place_of_work",
    "work_address",
    "number_of_dependents",
    "spouse_identification_number",
    "spouse_name",
    "spouse_date_of_birth",
    "prenuptial_agreement",
];
const ENTITY_FIELDS: &[&str] = &[
    "name",
    "address",
    "phone_number",
    "fax",
    "email",
    "business_type",
    "industry",
    "nationality",
    "residence",
    "npwp",
    "phone_ext",
    "legal_entity",
    "establishment_date",
    "establishment_place",
    "deed_date",
    "deed_number",
    "managements",
];
const MANAGEMENT_FIELDS: &[&str] = &[
    "name",
    "position",
    "email_address",
    "mobile_number",
    "address",
    "gender",
    "identity_number",
];
const ADDRESS_FIELDS: &[&str] = &[
    "street_address",
    "rt",
    "rw",
    "province",
    "city",
    "district",
    "village",
    "postal_code",
    "country",
];
const BANK_ACCOUNT_FIELDS: &[&str] = &["holder_name", "number", "swift_code"];
const DOCUMENT_KINDS: &[&str] = &[
    "ktp",
    "selfie",
    "npwp",
    "selfie_with_ktp",
    "stock_images",
    "finance_report",
];

/// What the sandbox needs from a valid Create Borrower body; the body itself is kept as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BorrowerInput {
    pub business: bool,
    /// `authorised_signatory.documents.ktp.number`.
    pub nik: String,
    pub email: String,
    pub full_name: String,
    pub selfie_file: String,
}

/// Validates a whole Create Borrower body, reporting every problem.
///
/// # Errors
/// `400` naming each field that is missing, malformed or unknown.
pub(crate) fn validate_borrower(body: &Value, form: bool) -> Result<BorrowerInput, ApiError> {
    let mut c = Checker::new(form);
    let Some(root) = c.root(body) else {
        return Err(c
            .finish()
            .err()
            .unwrap_or_else(|| ApiError::bad_request("bad body")));
    };
    c.unknown_fields(root, "", TOP_FIELDS);
    let kind = c.string(root, "", "type", true, Rule::OneOf(BORROWER_TYPES));
    let business = kind == Some("BUSINESS");
    match c.object(root, "", "entity", false) {
        Some(entity) => entity_fields(&mut c, entity, "entity"),
        None if business && root.get("entity").is_none_or(Value::is_null) => {
            c.problem("entity", "is required when type is BUSINESS");
        }
        None => {}
    }
    let signatory = c.object(root, "", "authorised_signatory", true);
    let input = signatory.and_then(|s| signatory_fields(&mut c, s, "authorised_signatory"));
    c.finish()?;
    input
        .map(|mut i| {
            i.business = business;
            i
        })
        .ok_or_else(|| ApiError::bad_request("Validation failed"))
}

fn signatory_fields(c: &mut Checker, s: &Object, p: &str) -> Option<BorrowerInput> {
    c.unknown_fields(s, p, SIGNATORY_FIELDS);
    let first = c.text(s, p, "first_name");
    let last = c.text(s, p, "last_name");
    c.date(s, p, "birth_date", true);
    c.text(s, p, "birth_place");
    let email = c.string(s, p, "email", true, Rule::Email);
    c.text(s, p, "mother_maiden_name");
    c.string(s, p, "marital_status", true, Rule::OneOf(MARITAL_STATUSES));
    c.string(s, p, "gender", true, Rule::OneOf(GENDERS));
    c.string(s, p, "title", true, Rule::Code);
    c.string(s, p, "domicile", true, Rule::Country);
    for key in [
        "religion",
        "job",
        "education",
        "monthly_income_range",
        "housing_status",
        "source_of_fund",
    ] {
        c.string(s, p, key, true, Rule::Code);
    }
    if let Some(address) = c.object(s, p, "address", true) {
        address_fields(c, address, &join(p, "address"));
    }
    c.string(s, p, "mobile_number", true, Rule::InternationalPhone);
    if let Some(accounts) = c.array(s, p, "bank_account", false, false) {
        let ap = join(p, "bank_account");
        for (i, a) in accounts.iter().enumerate() {
            if let Some(a) = c.element(a, &index(&ap, i)) {
                bank_account_fields(c, a, &index(&ap, i));
            }
        }
    }
    let documents = c.object(s, p, "documents", true);
    let (nik, selfie) = match documents {
        Some(d) => document_fields(c, d, &join(p, "documents")),
        None => (None, None),
    };
    c.string(s, p, "business_type", false, Rule::Code);
    c.text(s, p, "emergency_contact_name");
    c.string(s, p, "emergency_contact_number", true, Rule::Phone);
    c.text(s, p, "place_of_work");
    c.text(s, p, "work_address");
    c.integer(s, p, "number_of_dependents", false, (0, 99));
    c.string(
        s,
        p,
        "spouse_identification_number",
        false,
        Rule::Digits(16),
    );
    c.string(s, p, "spouse_name", false, Rule::Text);
    c.date(s, p, "spouse_date_of_birth", false);
    c.bool_string(s, p, "prenuptial_agreement");
    Some(BorrowerInput {
        business: false,
        nik: nik?.to_owned(),
        email: email?.to_owned(),
        full_name: format!("{} {}", first?, last?),
        selfie_file: selfie?.to_owned(),
    })
}

fn address_fields(c: &mut Checker, a: &Object, p: &str) {
    c.unknown_fields(a, p, ADDRESS_FIELDS);
    c.text(a, p, "street_address");
    c.string(a, p, "rt", true, Rule::DigitsBetween(1, 3));
    c.string(a, p, "rw", true, Rule::DigitsBetween(1, 3));
    c.string(a, p, "province", true, Rule::Code);
    c.text(a, p, "city");
    c.text(a, p, "district");
    c.text(a, p, "village");
    c.string(a, p, "postal_code", true, Rule::Digits(5));
    c.string(a, p, "country", false, Rule::Country);
}

fn bank_account_fields(c: &mut Checker, a: &Object, p: &str) {
    c.unknown_fields(a, p, BANK_ACCOUNT_FIELDS);
    c.text(a, p, "holder_name");
    c.string(a, p, "number", true, Rule::DigitsBetween(5, 20));
    c.string(a, p, "swift_code", true, Rule::Swift);
}

/// Returns the KTP NIK and the selfie file when valid.
fn document_fields<'v>(
    c: &mut Checker,
    d: &'v Object,
    p: &str,
) -> (Option<&'v str>, Option<&'v str>) {
    c.unknown_fields(d, p, DOCUMENT_KINDS);
    let mut nik = None;
    if let Some(ktp) = c.object(d, p, "ktp", true) {
        let kp = join(p, "ktp");
        c.unknown_fields(ktp, &kp, &["number", "file", "issuing_city", "expiry_date"]);
        nik = c.string(ktp, &kp, "number", true, Rule::Digits(16));
        c.text(ktp, &kp, "file");
        c.string(ktp, &kp, "issuing_city", false, Rule::Text);
        c.date(ktp, &kp, "expiry_date", false);
    }
    let mut selfie = None;
    if let Some(s) = c.object(d, p, "selfie", true) {
        let sp = join(p, "selfie");
        c.unknown_fields(s, &sp, &["file"]);
        selfie = c.text(s, &sp, "file");
    }
    if let Some(npwp) = c.object(d, p, "npwp", false) {
        let np = join(p, "npwp");
        c.unknown_fields(npwp, &np, &["number", "file"]);
        c.string(npwp, &np, "number", false, Rule::Npwp);
        c.text(npwp, &np, "file");
    }
    for kind in ["selfie_with_ktp", "stock_images", "finance_report"] {
        if let Some(doc) = c.object(d, p, kind, false) {
            let dp = join(p, kind);
            c.unknown_fields(doc, &dp, &["file"]);
            c.text(doc, &dp, "file");
        }
    }
    (nik, selfie)
}

fn entity_fields(c: &mut Checker, e: &Object, p: &str) {
    c.unknown_fields(e, p, ENTITY_FIELDS);
    c.text(e, p, "name");
    if let Some(address) = c.object(e, p, "address", true) {
        address_fields(c, address, &join(p, "address"));
    }
    c.string(e, p, "phone_number", true, Rule::InternationalPhone);
    c.string(e, p, "fax", false, Rule::InternationalPhone);
    c.string(e, p, "email", true, Rule::Email);
    c.string(e, p, "business_type", true, Rule::Code);
    c.string(e, p, "industry", true, Rule::Code);
    c.string(e, p, "nationality", true, Rule::Country);
    c.string(e, p, "residence", true, Rule::Country);
    c.string(e, p, "npwp", true, Rule::Npwp);
    c.optional_text(e, p, "phone_ext");
    c.string(e, p, "legal_entity", true, Rule::Code);
    c.date(e, p, "establishment_date", true);
    c.text(e, p, "establishment_place");
    c.date(e, p, "deed_date", true);
    c.text(e, p, "deed_number");
    if let Some(list) = c.array(e, p, "managements", true, true) {
        let mp = join(p, "managements");
        for (i, m) in list.iter().enumerate() {
            let ip = index(&mp, i);
            if let Some(m) = c.element(m, &ip) {
                c.unknown_fields(m, &ip, MANAGEMENT_FIELDS);
                c.text(m, &ip, "name");
                c.string(m, &ip, "position", true, Rule::Code);
                c.string(m, &ip, "email_address", true, Rule::Email);
                c.string(m, &ip, "mobile_number", true, Rule::InternationalPhone);
                c.text(m, &ip, "address");
                c.string(m, &ip, "gender", true, Rule::OneOf(GENDERS));
                c.string(m, &ip, "identity_number", true, Rule::Digits(16));
            }
        }
    }
}

/// Applies a PATCH body to a stored create body: objects merge key by key, anything else
/// (arrays, strings) replaces, `null` leaves the field as it was (CONTRACT §1: `null` counts
/// as absent). The merged body is then validated like a create body, so a patch can't make a
/// borrower invalid.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match v {
                    Value::Null => {}
                    Value::Object(_) => merge_patch(t.entry(k.clone()).or_insert(Value::Null), v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub(crate) fn personal() -> Value {
        json!({
            "type": "PERSONAL",
            "authorised_signatory": {
                "first_name": "Budi", "last_name": "Santoso", "birth_date": "1995-11-01",
                "birth_place": "Jakarta", "email": "budi@example.com", "mother_maiden_name": "Sari",
                "marital_status": "MARRIED", "gender": "MALE", "title": "BPK", "domicile": "ID",
                "religion": "ISLAM", "job": "PRIVATE_SECTOR_EMPLOYEE", "education": "ELEMENTARY_SCHOOL",
                "address": {"street_address": "Jl. Sudirman No. 1", "rt": "01", "rw": "01",
                    "province": "JAWA_BARAT", "city": "Bandung", "district": "Coblong",
                    "village": "Dago", "postal_code": "40135", "country": "ID"},
                "mobile_number": "+6281234567890",
                "bank_account": [{"holder_name": "Budi Santoso", "number": "123123123213", "swift_code": "BNINIDJA"}],
                "documents": {"ktp": {"number": "3275062009921981", "file": "base64_or_url",
                    "issuing_city": "Jakarta", "expiry_date": "2099-11-01"},
                    "selfie": {"file": "base64_or_url"}},
                "monthly_income_range": "LESS_THAN_3_MILLION", "emergency_contact_name": "Humairah",
                "emergency_contact_number": "08123456789", "housing_status": "OWN_HOME",
                "source_of_fund": "SALARY", "place_of_work": "Finfra", "work_address": "Mega Kuningan",
                "number_of_dependents": 3, "spouse_name": "Mia",
                "spouse_identification_number": "3275062309984412",
                "spouse_date_of_birth": "1999-03-01", "prenuptial_agreement": "true"
            }
        })
    }

    #[test]
    fn the_reference_example_is_valid() {
        let input = validate_borrower(&personal(), false).expect("valid");
        assert_eq!(input.nik, "3275062009921981");
        assert_eq!(input.full_name, "Budi Santoso");
        assert!(!input.business);
    }

    #[test]
    fn business_without_entity_is_refused() {
        let mut body = personal();
        body["type"] = json!("BUSINESS");
        let err = validate_borrower(&body, false).unwrap_err();
        assert!(
            err.message
                .contains("entity is required when type is BUSINESS"),
            "{}",
            err.message
        );
    }

    #[test]
    fn merge_patch_merges_objects_and_ignores_null() {
        let mut body = personal();
        merge_patch(
            &mut body,
            &json!({"authorised_signatory": {"address": {"city": "Bogor"}, "spouse_name": null}}),
        );
        assert_eq!(body["authorised_signatory"]["address"]["city"], "Bogor");
        assert_eq!(body["authorised_signatory"]["address"]["rt"], "01");
        assert_eq!(body["authorised_signatory"]["spouse_name"], "Mia");
    }
}
