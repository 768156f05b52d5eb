//! Validation of the borrower bodies: create (strict: every required field), patch
//! (the same rules, applied to the fields present) and block.

use super::fields::{
    country_code, email, emergency_phone, nik, npwp, phone, plausible_birth_date, required, swift,
};
use super::{Checker, Validate, ValidationErrors};
use crate::model::borrower::{
    AuthorisedSignatory, BlockBorrower, BorrowerPatch, BorrowerType, CreateBorrower, Documents,
    Entity, Management, PartialAuthorisedSignatory, PartialDocument, PartialDocuments,
    PartialEntity, PartialManagement,
};
use crate::model::common::{Address, BankAccount};

impl Validate for CreateBorrower {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.known("type", &self.r#type);
        check_type_and_entity(&mut c, &self.r#type, self.entity.is_some());
        if let Some(entity) = &self.entity {
            c.at("entity", |c| check_entity(c, entity));
        }
        c.at("authorised_signatory", |c| {
            check_signatory(c, &self.authorised_signatory)
        });
        c.finish()
    }
}

impl Validate for BorrowerPatch {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        if let Some(kind) = &self.r#type {
            c.known("type", kind);
            // Only a contradiction inside the patch itself can be seen here; whether a
            // BUSINESS borrower keeps its entity depends on what Finfra already holds.
            if *kind == BorrowerType::Personal && self.entity.is_some() {
                c.error("entity", "must be absent when type is PERSONAL");
            }
        }
        if let Some(entity) = &self.entity {
            c.at("entity", |c| check_partial_entity(c, entity));
        }
        if let Some(signatory) = &self.authorised_signatory {
            c.at("authorised_signatory", |c| {
                check_partial_signatory(c, signatory)
            });
        }
        c.finish()
    }
}

impl Validate for BlockBorrower {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker::new();
        c.opt_str("reason", &self.reason, required);
        c.finish()
    }
}

fn check_type_and_entity(c: &mut Checker, kind: &BorrowerType, has_entity: bool) {
    match (kind, has_entity) {
        (BorrowerType::Business, false) => c.error("entity", "is required when type is BUSINESS"),
        (BorrowerType::Personal, true) => c.error("entity", "must be absent when type is PERSONAL"),
        _ => {}
    }
}

pub(super) fn check_address(c: &mut Checker, a: &Address) {
    c.str("street_address", &a.street_address, required);
    c.str("rt", &a.rt, required);
    c.str("rw", &a.rw, required);
    c.str("province", &a.province, required);
    c.str("city", &a.city, required);
    c.str("district", &a.district, required);
    c.str("village", &a.village, required);
    c.str("postal_code", &a.postal_code, required);
    c.opt_str("country", &a.country, country_code);
}

pub(super) fn check_bank_account(c: &mut Checker, b: &BankAccount) {
    c.str("holder_name", &b.holder_name, required);
    c.str("number", &b.number, required);
    c.str("swift_code", &b.swift_code, swift);
}

fn check_signatory(c: &mut Checker, s: &AuthorisedSignatory) {
    c.str("first_name", &s.first_name, required);
    c.str("last_name", &s.last_name, required);
    c.check("birth_date", plausible_birth_date(s.birth_date));
    c.str("birth_place", &s.birth_place, required);
    c.str("email", &s.email, email);
    c.str("mother_maiden_name", &s.mother_maiden_name, required);
    c.known("marital_status", &s.marital_status);
    c.known("gender", &s.gender);
    c.str("title", &s.title, required);
    c.str("domicile", &s.domicile, country_code);
    // Religion keeps an open set (`Unknown` is allowed): only emptiness is an error.
    c.str("religion", s.religion.as_str(), required);
    c.str("job", &s.job, required);
    c.str("education", &s.education, required);
    c.at("address", |c| check_address(c, &s.address));
    c.str("mobile_number", &s.mobile_number, phone);
    c.each("bank_account", &s.bank_account, check_bank_account);
    c.at("documents", |c| {
        check_documents(c, &s.documents, s.birth_date)
    });
    c.opt_str("business_type", &s.business_type, required);
    c.str("monthly_income_range", &s.monthly_income_range, required);
    c.str(
        "emergency_contact_name",
        &s.emergency_contact_name,
        required,
    );
    c.str(
        "emergency_contact_number",
        &s.emergency_contact_number,
        emergency_phone,
    );
    c.str("housing_status", &s.housing_status, required);
    c.str("source_of_fund", &s.source_of_fund, required);
    c.str("place_of_work", &s.place_of_work, required);
    c.str("work_address", &s.work_address, required);
    c.opt_str(
        "spouse_identification_number",
        &s.spouse_identification_number,
        nik,
    );
    c.opt_str("spouse_name", &s.spouse_name, required);
    if let Some(date) = s.spouse_date_of_birth {
        c.check("spouse_date_of_birth", plausible_birth_date(date));
    }
}

fn check_documents(c: &mut Checker, d: &Documents, birth_date: chrono::NaiveDate) {
    c.at("ktp", |c| {
        c.str("number", &d.ktp.number, nik);
        c.str("file", &d.ktp.file, required);
        c.opt_str("issuing_city", &d.ktp.issuing_city, required);
        if d.ktp.expiry_date.is_some_and(|expiry| expiry <= birth_date) {
            c.error("expiry_date", "must be after the birth date");
        }
    });
    c.at("selfie", |c| c.str("file", &d.selfie.file, required));
    if let Some(doc) = &d.npwp {
        c.at("npwp", |c| {
            c.str("number", &doc.number, npwp);
            c.str("file", &doc.file, required);
        });
    }
    for (name, doc) in [
        ("selfie_with_ktp", &d.selfie_with_ktp),
        ("stock_images", &d.stock_images),
        ("finance_report", &d.finance_report),
    ] {
        if let Some(doc) = doc {
            c.at(name, |c| c.str("file", &doc.file, required));
        }
    }
}

fn check_entity(c: &mut Checker, e: &Entity) {
    c.str("name", &e.name, required);
    c.at("address", |c| check_address(c, &e.address));
    c.str("phone_number", &e.phone_number, phone);
    c.opt_str("fax", &e.fax, phone);
    c.str("email", &e.email, email);
    c.str("business_type", &e.business_type, required);
    c.str("industry", &e.industry, required);
    c.str("nationality", &e.nationality, country_code);
    c.str("residence", &e.residence, country_code);
    c.str("npwp", &e.npwp, npwp);
    c.opt_str("phone_ext", &e.phone_ext, required);
    c.str("legal_entity", &e.legal_entity, required);
    c.str("establishment_place", &e.establishment_place, required);
    c.str("deed_number", &e.deed_number, required);
    if e.managements.is_empty() {
        c.error("managements", "must not be empty");
    }
    c.each("managements", &e.managements, check_management);
}

fn check_management(c: &mut Checker, m: &Management) {
    c.str("name", &m.name, required);
    c.str("position", &m.position, required);
    c.str("email_address", &m.email_address, email);
    c.str("mobile_number", &m.mobile_number, phone);
    c.str("address", &m.address, required);
    c.known("gender", &m.gender);
    c.str("identity_number", &m.identity_number, nik);
}

fn check_partial_signatory(c: &mut Checker, s: &PartialAuthorisedSignatory) {
    for (field, value) in [
        ("first_name", &s.first_name),
        ("last_name", &s.last_name),
        ("birth_place", &s.birth_place),
        ("mother_maiden_name", &s.mother_maiden_name),
        ("title", &s.title),
        ("job", &s.job),
        ("education", &s.education),
        ("business_type", &s.business_type),
        ("monthly_income_range", &s.monthly_income_range),
        ("emergency_contact_name", &s.emergency_contact_name),
        ("housing_status", &s.housing_status),
        ("source_of_fund", &s.source_of_fund),
        ("place_of_work", &s.place_of_work),
        ("work_address", &s.work_address),
        ("spouse_name", &s.spouse_name),
    ] {
        c.opt_str(field, value, required);
    }
    if let Some(date) = s.birth_date {
        c.check("birth_date", plausible_birth_date(date));
    }
    c.opt_str("email", &s.email, email);
    if let Some(v) = &s.marital_status {
        c.known("marital_status", v);
    }
    if let Some(v) = &s.gender {
        c.known("gender", v);
    }
    c.opt_str("domicile", &s.domicile, country_code);
    if let Some(v) = &s.religion {
        c.str("religion", v.as_str(), required);
    }
    if let Some(a) = &s.address {
        c.at("address", |c| check_address(c, a));
    }
    c.opt_str("mobile_number", &s.mobile_number, phone);
    if let Some(accounts) = &s.bank_account {
        c.each("bank_account", accounts, check_bank_account);
    }
    if let Some(d) = &s.documents {
        c.at("documents", |c| check_partial_documents(c, d));
    }
    c.opt_str(
        "emergency_contact_number",
        &s.emergency_contact_number,
        emergency_phone,
    );
    c.opt_str(
        "spouse_identification_number",
        &s.spouse_identification_number,
        nik,
    );
    if let Some(date) = s.spouse_date_of_birth {
        c.check("spouse_date_of_birth", plausible_birth_date(date));
    }
}

/// A field rule, as the [`Checker`] string helpers take it.
type Rule = fn(&str) -> Result<(), String>;

fn check_partial_documents(c: &mut Checker, d: &PartialDocuments) {
    // Which documents carry a `number`, and what it must look like.
    let number_rule: [(&str, &Option<PartialDocument>, Option<Rule>); 6] = [
        ("ktp", &d.ktp, Some(nik)),
        ("selfie", &d.selfie, None),
        ("npwp", &d.npwp, Some(npwp)),
        ("selfie_with_ktp", &d.selfie_with_ktp, None),
        ("stock_images", &d.stock_images, None),
        ("finance_report", &d.finance_report, None),
    ];
    for (name, doc, rule) in number_rule {
        let Some(doc) = doc else { continue };
        c.at(name, |c| {
            match rule {
                Some(rule) => c.opt_str("number", &doc.number, rule),
                None if doc.number.is_some() => {
                    c.error("number", "is not a field of this document")
                }
                None => {}
            }
            c.opt_str("file", &doc.file, required);
            c.opt_str("issuing_city", &doc.issuing_city, required);
        });
    }
}

fn check_partial_entity(c: &mut Checker, e: &PartialEntity) {
    for (field, value) in [
        ("name", &e.name),
        ("business_type", &e.business_type),
        ("industry", &e.industry),
        ("phone_ext", &e.phone_ext),
        ("legal_entity", &e.legal_entity),
        ("establishment_place", &e.establishment_place),
        ("deed_number", &e.deed_number),
    ] {
        c.opt_str(field, value, required);
    }
    if let Some(a) = &e.address {
        c.at("address", |c| check_address(c, a));
    }
    c.opt_str("phone_number", &e.phone_number, phone);
    c.opt_str("fax", &e.fax, phone);
    c.opt_str("email", &e.email, email);
    c.opt_str("nationality", &e.nationality, country_code);
    c.opt_str("residence", &e.residence, country_code);
    c.opt_str("npwp", &e.npwp, npwp);
    if let Some(managements) = &e.managements {
        if managements.is_empty() {
            c.error("managements", "must not be empty");
        }
        c.each("managements", managements, check_partial_management);
    }
}

fn check_partial_management(c: &mut Checker, m: &PartialManagement) {
    c.opt_str("name", &m.name, required);
    c.opt_str("position", &m.position, required);
    c.opt_str("email_address", &m.email_address, email);
    c.opt_str("mobile_number", &m.mobile_number, phone);
    c.opt_str("address", &m.address, required);
    if let Some(g) = &m.gender {
        c.known("gender", g);
    }
    c.opt_str("identity_number", &m.identity_number, nik);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::borrower::{FileDocument, NpwpDocument};
    use crate::model::common::{Gender, MaritalStatus};
    use crate::model::test_fixtures::{business_borrower, reference_create_borrower, ymd};

    fn paths(errors: &ValidationErrors) -> Vec<&str> {
        errors.errors().iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn reference_example_is_valid() {
        assert_eq!(reference_create_borrower().validate(), Ok(()));
        assert_eq!(business_borrower().validate(), Ok(()));
    }

    #[test]
    fn business_without_entity() {
        let mut b = business_borrower();
        b.entity = None;
        let errs = b.validate().unwrap_err();
        assert_eq!(paths(&errs), ["entity"]);
        assert_eq!(
            errs.to_string(),
            "entity: is required when type is BUSINESS"
        );
    }

    #[test]
    fn personal_with_entity() {
        let mut b = business_borrower();
        b.r#type = BorrowerType::Personal;
        assert_eq!(
            b.validate().unwrap_err().to_string(),
            "entity: must be absent when type is PERSONAL"
        );
    }

    #[test]
    fn empty_managements() {
        let mut b = business_borrower();
        b.entity.as_mut().unwrap().managements.clear();
        assert_eq!(
            b.validate().unwrap_err().to_string(),
            "entity.managements: must not be empty"
        );
    }

    #[test]
    fn nik_errors_name_the_full_path() {
        let mut b = business_borrower();
        b.authorised_signatory.documents.ktp.number = "123".into();
        b.entity.as_mut().unwrap().managements[0].identity_number = "3273019903850004".into();
        let errs = b.validate().unwrap_err();
        assert_eq!(
            errs.errors()[0].to_string(),
            "entity.managements[0].identity_number: must embed a valid birth date in digits 7-12 \
             (DDMMYY, day + 40 for women)"
        );
        assert_eq!(
            errs.errors()[1].to_string(),
            "authorised_signatory.documents.ktp.number: must be 16 digits"
        );
    }

    #[test]
    fn collects_every_problem() {
        let mut b = business_borrower();
        let s = &mut b.authorised_signatory;
        s.first_name = " ".into();
        s.email = "budi-at-example.com".into();
        s.gender = Gender::Unknown("M".into());
        s.marital_status = MaritalStatus::Unknown(String::new());
        s.domicile = "IDN".into();
        s.address.country = Some("XX".into());
        s.address.postal_code = String::new();
        s.mobile_number = "081234567890".into();
        s.emergency_contact_number = "12345".into();
        s.bank_account[0].swift_code = "BNINXXJA".into();
        s.documents.ktp.expiry_date = Some(ymd(1990, 1, 1));
        s.documents.selfie = FileDocument::new("");
        s.documents.npwp = Some(NpwpDocument {
            number: "01.234.567.8-901.000".into(),
            file: "f".into(),
        });
        s.spouse_identification_number = Some(String::new());
        s.work_address = String::new();
        let e = b.entity.as_mut().unwrap();
        e.nationality = "id".into();
        e.npwp = "123".into();
        e.phone_number = "+62".into();
        e.managements[0].email_address = "x@y".into();
        e.managements[0].gender = Gender::Unknown("F".into());

        let errs = b.validate().unwrap_err();
        assert_eq!(
            paths(&errs),
            [
                "entity.phone_number",
                "entity.nationality",
                "entity.npwp",
                "entity.managements[0].email_address",
                "entity.managements[0].gender",
                "authorised_signatory.first_name",
                "authorised_signatory.email",
                "authorised_signatory.marital_status",
                "authorised_signatory.gender",
                "authorised_signatory.domicile",
                "authorised_signatory.address.postal_code",
                "authorised_signatory.address.country",
                "authorised_signatory.mobile_number",
                "authorised_signatory.bank_account[0].swift_code",
                "authorised_signatory.documents.ktp.expiry_date",
                "authorised_signatory.documents.selfie.file",
                "authorised_signatory.documents.npwp.number",
                "authorised_signatory.emergency_contact_number",
                "authorised_signatory.work_address",
                "authorised_signatory.spouse_identification_number",
            ]
        );
        let text = errs.to_string();
        assert!(
            text.contains("authorised_signatory.gender: must be one of MALE, FEMALE (got \"M\")"),
            "{text}"
        );
        assert_eq!(text.matches("; ").count(), errs.errors().len() - 1);
    }

    #[test]
    fn patch_checks_only_present_fields() {
        assert_eq!(BorrowerPatch::default().validate(), Ok(()));
        let patch = BorrowerPatch {
            r#type: Some(BorrowerType::Personal),
            entity: Some(PartialEntity {
                managements: Some(vec![]),
                ..Default::default()
            }),
            authorised_signatory: Some(PartialAuthorisedSignatory {
                mobile_number: Some("0812".into()),
                work_address: Some(String::new()),
                documents: Some(PartialDocuments {
                    ktp: Some(PartialDocument {
                        number: Some("1".into()),
                        ..Default::default()
                    }),
                    selfie: Some(PartialDocument {
                        number: Some("3275062009921981".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let errs = patch.validate().unwrap_err();
        assert_eq!(
            paths(&errs),
            [
                "entity",
                "entity.managements",
                "authorised_signatory.work_address",
                "authorised_signatory.mobile_number",
                "authorised_signatory.documents.ktp.number",
                "authorised_signatory.documents.selfie.number",
            ]
        );
        let ok = BorrowerPatch {
            authorised_signatory: Some(PartialAuthorisedSignatory {
                mobile_number: Some("+6281200000000".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn block_reason() {
        assert_eq!(BlockBorrower::default().validate(), Ok(()));
        assert_eq!(
            BlockBorrower {
                reason: Some("fraud".into())
            }
            .validate(),
            Ok(())
        );
        assert_eq!(
            BlockBorrower {
                reason: Some(String::new())
            }
            .validate()
            .unwrap_err()
            .to_string(),
            "reason: must not be empty"
        );
    }
}
