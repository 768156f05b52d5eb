//! Request bodies built by hand from the reference's examples, shared by the model and
//! validation tests.

use chrono::NaiveDate;

use crate::model::borrower::{
    AuthorisedSignatory, BorrowerType, CreateBorrower, Documents, Entity, FileDocument,
    KtpDocument, Management,
};
use crate::model::common::{Address, BankAccount, Gender, MaritalStatus, Religion};

pub(crate) fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

/// The reference's create-borrower example, built by hand.
pub(crate) fn reference_create_borrower() -> CreateBorrower {
    CreateBorrower {
        r#type: BorrowerType::Personal,
        entity: None,
        authorised_signatory: AuthorisedSignatory {
            first_name: "Budi".into(),
            last_name: "Santoso".into(),
            birth_date: ymd(1995, 11, 1),
            birth_place: "Jakarta".into(),
            email: "budi@example.com".into(),
            mother_maiden_name: "Sari".into(),
            marital_status: MaritalStatus::Married,
            gender: Gender::Male,
            title: "BPK".into(),
            domicile: "ID".into(),
            religion: Religion::Islam,
            job: "PRIVATE_SECTOR_EMPLOYEE".into(),
            education: "ELEMENTARY_SCHOOL".into(),
            address: Address {
                street_address: "Jl. Sudirman No. 1".into(),
                rt: "01".into(),
                rw: "01".into(),
                province: "JAWA_BARAT".into(),
                city: "Bandung".into(),
                district: "Coblong".into(),
                village: "Dago".into(),
                postal_code: "40135".into(),
                country: Some("ID".into()),
            },
            mobile_number: "+6281234567890".into(),
            bank_account: vec![BankAccount {
                holder_name: "Budi Santoso".into(),
                number: "123123123213".into(),
                swift_code: "BNINIDJA".into(),
            }],
            documents: Documents {
                ktp: KtpDocument {
                    number: "3275062009921981".into(),
                    file: "base64_or_url".into(),
                    issuing_city: Some("Jakarta".into()),
                    expiry_date: Some(ymd(2099, 11, 1)),
                },
                selfie: FileDocument::new("base64_or_url"),
                npwp: None,
                selfie_with_ktp: None,
                stock_images: None,
                finance_report: None,
            },
            business_type: None,
            monthly_income_range: "LESS_THAN_3_MILLION".into(),
            emergency_contact_name: "Humairah".into(),
            emergency_contact_number: "08123456789".into(),
            housing_status: "OWN_HOME".into(),
            source_of_fund: "SALARY".into(),
            place_of_work: "Finfra".into(),
            work_address: "Mega Kuningan".into(),
            number_of_dependents: Some(3),
            spouse_identification_number: Some("3275062309984412".into()),
            spouse_name: Some("Mia".into()),
            spouse_date_of_birth: Some(ymd(1999, 3, 1)),
            prenuptial_agreement: Some(true),
        },
    }
}

/// A valid BUSINESS borrower: the reference's signatory plus an entity built from the
/// reference's field examples.
pub(crate) fn business_borrower() -> CreateBorrower {
    let mut b = reference_create_borrower();
    b.r#type = BorrowerType::Business;
    b.entity = Some(Entity {
        name: "PT Maju Jaya".into(),
        address: Address {
            country: None,
            ..b.authorised_signatory.address.clone()
        },
        phone_number: "+6287711998822".into(),
        fax: None,
        email: "finance@majujaya.co.id".into(),
        business_type: "OTHER".into(),
        industry: "PRIVATE_PERSON_NAME".into(),
        nationality: "ID".into(),
        residence: "ID".into(),
        npwp: "012345678901000".into(),
        phone_ext: None,
        legal_entity: "PT".into(),
        establishment_date: ymd(2010, 5, 17),
        establishment_place: "Bandung".into(),
        deed_date: ymd(2010, 5, 17),
        deed_number: "AHU-0012345.AH.01.01".into(),
        managements: vec![Management {
            name: "Siti Rahma".into(),
            position: "OWNER_MANAGEMENT".into(),
            email_address: "siti@majujaya.co.id".into(),
            mobile_number: "+6281298765432".into(),
            address: "Jl. Dago No. 5, Bandung".into(),
            gender: Gender::Female,
            // Born 1985-03-12, female: day 12 + 40 = 52.
            identity_number: "3273015203850004".into(),
        }],
    });
    b
}
