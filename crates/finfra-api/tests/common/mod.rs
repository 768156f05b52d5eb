//! Shared helpers of the integration tests: a fresh sandbox per test, a client pointed at it,
//! valid request bodies, and polling for the sandbox's asynchronous transitions.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod scripted;

use std::future::Future;
use std::time::Duration;

use chrono::NaiveDate;
use finfra_api::auth::Credentials;
use finfra_api::model::borrower::{
    AuthorisedSignatory, BorrowerStatus, BorrowerType, CreateBorrower, Documents, FileDocument,
    KtpDocument,
};
use finfra_api::model::common::{Address, BankAccount, Gender, MaritalStatus, Religion};
use finfra_api::model::loan::{CreateSinglePaymentLoan, InitiateSigning};
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{RunningSandbox, Sandbox, SandboxConfig};
use rust_decimal::Decimal;

/// A sandbox with the test preset (zero delays, no faults, no rate limit).
pub async fn sandbox() -> RunningSandbox {
    sandbox_with(SandboxConfig::for_tests()).await
}

pub async fn sandbox_with(config: SandboxConfig) -> RunningSandbox {
    init_tracing();
    Sandbox::start(config).await.expect("the sandbox starts")
}

/// Tests are silent unless `TEST_LOG` is set (then `RUST_LOG`, default `debug`, filters).
pub fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "debug".into()),
                )
                .with_test_writer()
                .init();
        }
    });
}

/// The default client configuration for `sandbox`.
pub fn config(sandbox: &RunningSandbox) -> ClientConfig {
    ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), sandbox.client_secret()),
    )
}

pub fn client(sandbox: &RunningSandbox) -> FinfraClient {
    FinfraClient::new(config(sandbox)).expect("the client builds")
}

pub fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

/// A NIK that agrees with [`borrower`]'s birth date (1995-11-01, male): region 327506,
/// `011195`, then a 4-digit serial that makes it unique within a test.
pub fn nik(serial: u16) -> String {
    format!("327506011195{serial:04}")
}

/// The reference's create-borrower example, with NIK `nik` and signatory email `email`
/// (the sandbox reads magic tags such as `+reject` from it).
pub fn borrower(nik: &str, email: &str) -> CreateBorrower {
    CreateBorrower {
        r#type: BorrowerType::Personal,
        entity: None,
        authorised_signatory: AuthorisedSignatory {
            first_name: "Budi".into(),
            last_name: "Santoso".into(),
            birth_date: ymd(1995, 11, 1),
            birth_place: "Jakarta".into(),
            email: email.into(),
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
            bank_account: vec![account()],
            documents: Documents {
                ktp: KtpDocument {
                    number: nik.into(),
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

pub fn account() -> BankAccount {
    BankAccount {
        holder_name: "Budi Santoso".into(),
        number: "123123123213".into(),
        swift_code: "BNINIDJA".into(),
    }
}

/// A valid single-payment loan of 5 000 000 IDR.
pub fn single_loan(unique_id: &str) -> CreateSinglePaymentLoan {
    CreateSinglePaymentLoan {
        unique_id: unique_id.into(),
        principal_amount: Decimal::new(500_000_000, 2),
        interest_amount: Decimal::from(150_000),
        fee_amount: Some(Decimal::from(10_000)),
        due_date: ymd(2099, 12, 31),
        purpose: "Working capital".into(),
        disbursement_account: account(),
    }
}

/// Polls `probe` every 10 ms until it yields a value; panics after 5 s. For the sandbox's
/// asynchronous transitions, which run on spawned tasks even with zero delays.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the borrower with `nik` exists and returns its id.
pub async fn borrower_id(sandbox: &RunningSandbox, nik: &str) -> String {
    eventually("the borrower to be created", || async {
        sandbox.borrower_id_by_nik(nik)
    })
    .await
}

/// Waits until the borrower has `status`, reading it through the client.
pub async fn wait_status(client: &FinfraClient, user_id: &str, status: BorrowerStatus) {
    eventually(&format!("borrower status {status:?}"), || async {
        let borrower = client.get_borrower(user_id).await.expect("get borrower");
        (borrower.status == status).then_some(())
    })
    .await;
}

/// Creates a borrower and drives it to `APPROVED`; returns its id.
pub async fn approved_borrower(
    sandbox: &RunningSandbox,
    client: &FinfraClient,
    serial: u16,
) -> String {
    let nik = nik(serial);
    client
        .create_borrower(&borrower(&nik, "budi@example.com"), None)
        .await
        .expect("create borrower");
    let id = borrower_id(sandbox, &nik).await;
    wait_status(client, &id, BorrowerStatus::Verified).await;
    client.approve_borrower(&id).await.expect("approve");
    wait_status(client, &id, BorrowerStatus::Approved).await;
    id
}

/// Creates a loan for an approved borrower and has the borrower sign it.
pub async fn signed_loan(
    sandbox: &RunningSandbox,
    client: &FinfraClient,
    user_id: &str,
    unique_id: &str,
) {
    client
        .create_single_payment_loan(user_id, &single_loan(unique_id))
        .await
        .expect("create loan");
    client
        .initiate_signing(&InitiateSigning {
            unique_id: unique_id.into(),
        })
        .await
        .expect("initiate signing");
    sandbox.sign_loan(unique_id).expect("the borrower signs");
}
