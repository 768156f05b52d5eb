//! Every endpoint against the sandbox, through the flows the engine runs: e-KYC to a repaid
//! loan, the plain create with a `kyc-id` header, blocking, BNPL and rejection, listing and
//! paging, and the two-step document upload with a streamed download.

mod common;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use rust_decimal::Decimal;

use finfra_api::Error;
use finfra_api::client::FileUpload;
use finfra_api::model::borrower::{
    BlockBorrower, BorrowerPatch, BorrowerStatus, BorrowerType, PartialAuthorisedSignatory,
};
use finfra_api::model::credit::{ClikCreditReportRequest, CreditSource, ScoreReportRequest};
use finfra_api::model::document::{CreateDocument, DocumentPatch, DocumentStatus, DocumentType};
use finfra_api::model::ekyc::{
    BiometricRequest, DataSource, HubCheckStatus, HubProvider, KycSubmissionStatus, Liveness,
    OcrRequest, RdfBiometricStatus,
};
use finfra_api::model::loan::{
    CreateBnplLoan, Frequency, InitiateSigning, ListLoansQuery, LoanStatus, LoanType, RejectLoan,
};
use finfra_api::model::virtual_account::{BankCode, VirtualAccountRequest};
use finfra_api::{FinfraClient, model::Accepted};

async fn ocr(client: &FinfraClient, nik: &str, source: Option<&DataSource>) -> String {
    let read = client
        .ocr(
            &OcrRequest {
                document_type: DocumentType::Ktp,
                file: format!("scan-of-ktp-{nik}"),
            },
            source,
            None,
        )
        .await
        .expect("ocr");
    assert_eq!(read.extracted.nik.as_deref(), Some(nik));
    read.kyc_id
}

async fn user_of_session(client: &FinfraClient, kyc_id: &str) -> String {
    common::eventually("the KYC session's borrower", || async {
        client
            .get_kyc_submission(kyc_id)
            .await
            .expect("submission")
            .user_id
    })
    .await
}

#[tokio::test]
async fn kyc_path_from_ocr_to_a_repaid_loan() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    assert_eq!(
        client.health_productionness().await.expect("alive").status,
        "UP"
    );
    assert_eq!(client.health_readiness().await.expect("ready").status, "UP");

    // e-KYC: OCR opens the session, biometric joins it, the borrower is created on it.
    let nik = common::nik(10);
    let kyc_id = ocr(&client, &nik, Some(&DataSource::Verihubs)).await;
    let biometric = client
        .biometric_kyc(
            &BiometricRequest {
                selfie: "selfie-base64".into(),
            },
            Some(&kyc_id),
        )
        .await
        .expect("biometric");
    assert_eq!(
        (biometric.kyc_id.as_str(), &biometric.liveness),
        (kyc_id.as_str(), &Liveness::Passed)
    );
    let accepted = client
        .create_borrower_for_kyc(&kyc_id, &common::borrower(&nik, "budi@example.com"))
        .await
        .expect("create on the KYC path");
    assert_eq!(
        accepted,
        Accepted {
            status: "success".into(),
            message: "Borrower creation request accepted".into()
        }
    );
    let user = user_of_session(&client, &kyc_id).await;
    assert_eq!(
        client.submit_kyc(&kyc_id).await.expect("submit").status,
        KycSubmissionStatus::Submitted
    );

    // The borrower as Finfra returns it decodes, and the checks run.
    let borrower = client.get_borrower(&user).await.expect("get borrower");
    assert_eq!(
        (borrower.id.as_str(), &borrower.r#type),
        (user.as_str(), &BorrowerType::Personal)
    );
    assert_eq!(
        borrower.authorised_signatory.first_name.as_deref(),
        Some("Budi")
    );
    common::wait_status(&client, &user, BorrowerStatus::Verified).await;
    let hub = client
        .hub_status(&user, &HubProvider::Verihubs)
        .await
        .expect("hub");
    assert_eq!(
        (hub.provider, hub.status),
        (HubProvider::Verihubs, HubCheckStatus::Passed)
    );
    assert_eq!(
        client
            .verify_biometric_rdf(&user)
            .await
            .expect("rdf")
            .status,
        RdfBiometricStatus::Verified
    );
    let patch = BorrowerPatch {
        authorised_signatory: Some(PartialAuthorisedSignatory {
            email: Some("budi.santoso@example.com".into()),
            ..PartialAuthorisedSignatory::default()
        }),
        ..BorrowerPatch::default()
    };
    let patched = client.update_borrower(&user, &patch).await.expect("patch");
    assert_eq!(
        patched.authorised_signatory.email.as_deref(),
        Some("budi.santoso@example.com")
    );

    // Approval, then credit.
    let approved = client.approve_borrower(&user).await.expect("approve");
    assert_eq!(approved.status, BorrowerStatus::ApprovedByPartner);
    common::wait_status(&client, &user, BorrowerStatus::Approved).await;
    let score = client
        .score_report(
            &ScoreReportRequest {
                user_id: user.clone(),
            },
            &[CreditSource::Afpi, CreditSource::Clik],
        )
        .await
        .expect("score");
    assert!((300..=900).contains(&score.score), "{}", score.score);
    assert_eq!(score.sources.len(), 2);
    client.credit_history(&nik).await.expect("credit history");
    let clik = client
        .clik_credit_report(&ClikCreditReportRequest {
            user_id: user.clone(),
        })
        .await
        .expect("clik");
    assert_eq!(clik.user_id, user);
    client
        .afpi_credit_report(&nik, "REF-0001")
        .await
        .expect("afpi");

    // The loan: create, sign, disburse, repay.
    let loan = client
        .create_single_payment_loan(&user, &common::single_loan("loan-happy-1"))
        .await
        .expect("loan");
    assert_eq!(
        (loan.status, loan.r#type),
        (LoanStatus::Pending, LoanType::SinglePayment)
    );
    assert_eq!(loan.total_amount, Decimal::new(516_000_000, 2));
    let session = client
        .initiate_signing(&InitiateSigning {
            unique_id: "loan-happy-1".into(),
        })
        .await
        .expect("signing");
    assert_eq!(session.status, LoanStatus::Signing);
    assert!(!session.signing_url.is_empty());
    sandbox.sign_loan("loan-happy-1").expect("sign");
    let disbursing = client
        .disburse_loan("loan-happy-1")
        .await
        .expect("disburse");
    assert_eq!(disbursing.status, LoanStatus::Disbursing);
    sandbox
        .complete_disbursement("loan-happy-1")
        .expect("the bank pays");
    assert_eq!(
        client
            .get_loan("loan-happy-1")
            .await
            .expect("detail")
            .status,
        LoanStatus::Disbursed
    );
    let account = client
        .request_virtual_account(&VirtualAccountRequest {
            loan_unique_id: "loan-happy-1".into(),
            bank_code: BankCode::Bca,
        })
        .await
        .expect("virtual account");
    assert_eq!(account.expected_amount, loan.total_amount);
    sandbox
        .pay_virtual_account(&account.external_id, account.expected_amount)
        .expect("the borrower pays");
    common::eventually("the loan to be paid", || async {
        (client
            .get_loan("loan-happy-1")
            .await
            .expect("detail")
            .status
            == LoanStatus::Paid)
            .then_some(())
    })
    .await;

    let ledger = sandbox.ledger();
    assert_eq!(ledger.disbursements_accepted["loan-happy-1"], 1);
    assert_eq!(ledger.token_requests, 1, "one token for the whole flow");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn plain_create_with_a_kyc_header_then_block() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    let nik = common::nik(11);
    let kyc_id = ocr(&client, &nik, None).await;

    client
        .create_borrower(&common::borrower(&nik, "budi@example.com"), Some(&kyc_id))
        .await
        .expect("create with kyc-id");
    // The header linked the borrower to the session.
    let user = user_of_session(&client, &kyc_id).await;
    assert_eq!(
        sandbox.borrower_id_by_nik(&nik).as_deref(),
        Some(user.as_str())
    );

    let blocked = client
        .block_borrower(
            &user,
            Some(&BlockBorrower {
                reason: Some("fraud suspected".into()),
            }),
        )
        .await
        .expect("block");
    assert_eq!(blocked.status, BorrowerStatus::Blocked);
    // A blocked borrower cannot be changed.
    let error = client
        .update_borrower(&user, &BorrowerPatch::default())
        .await
        .unwrap_err();
    assert!(error.is_conflict(), "{error:?}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn bnpl_loans_are_scheduled_and_can_be_rejected() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    let user = common::approved_borrower(&sandbox, &client, 12).await;

    let loan = client
        .create_bnpl_loan(
            &user,
            &CreateBnplLoan {
                unique_id: "bnpl-0001".into(),
                principal_amount: Decimal::new(300_000_000, 2),
                tenor: 6,
                frequency: Frequency::Monthly,
                interest_rate: Decimal::new(175, 4),
                first_due_date: common::ymd(2099, 1, 31),
                merchant_name: Some("Toko Maju".into()),
                disbursement_account: common::account(),
            },
        )
        .await
        .expect("bnpl");
    assert_eq!(loan.r#type, LoanType::Bnpl);
    assert_eq!(loan.schedule.len(), 6);
    let total: Decimal = loan.schedule.iter().map(|i| i.total).sum();
    assert_eq!(total, loan.total_amount);

    let rejected = client
        .reject_loan(
            "bnpl-0001",
            &RejectLoan {
                reason: "policy".into(),
            },
        )
        .await
        .expect("reject");
    assert_eq!(rejected.status, LoanStatus::Rejected);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn loans_are_listed_with_filters_and_paged_through() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    let user = common::approved_borrower(&sandbox, &client, 13).await;
    for (i, principal) in [1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000]
        .into_iter()
        .enumerate()
    {
        let mut loan = common::single_loan(&format!("loan-list-{i}"));
        loan.principal_amount = Decimal::from(principal);
        client
            .create_single_payment_loan(&user, &loan)
            .await
            .expect("create");
    }

    let page = client
        .list_loans(&ListLoansQuery {
            user_id: Some(user.clone()),
            page_size: Some(2),
            ..ListLoansQuery::default()
        })
        .await
        .expect("page");
    assert_eq!(
        (page.data.len(), page.total_items, page.page_number),
        (2, 5, 1)
    );
    let filtered = client
        .list_loans(&ListLoansQuery {
            start_range_amount: Some(Decimal::from(2_500_000)),
            end_range_amount: Some(Decimal::from(4_500_000)),
            ..ListLoansQuery::default()
        })
        .await
        .expect("filtered");
    let mut ids: Vec<_> = filtered.data.iter().map(|l| l.unique_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["loan-list-2", "loan-list-3"]);

    sandbox.reset_ledger();
    let all: Vec<_> = client
        .list_all_loans(ListLoansQuery {
            page_size: Some(2),
            ..ListLoansQuery::default()
        })
        .map_ok(|loan| loan.unique_id)
        .try_collect()
        .await
        .expect("every page");
    let mut all = all;
    all.sort_unstable();
    assert_eq!(
        all,
        [
            "loan-list-0",
            "loan-list-1",
            "loan-list-2",
            "loan-list-3",
            "loan-list-4"
        ]
    );
    assert_eq!(
        sandbox.ledger().requests["GET /api/core/loans"],
        3,
        "pages of 2, 2 and 1"
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn documents_are_uploaded_in_two_steps_streamed_and_patched() {
    let sandbox = common::sandbox().await;
    let client = common::client(&sandbox);
    let file = |bytes: &'static [u8]| FileUpload {
        bytes: Bytes::from_static(bytes),
        filename: "ktp.jpg".into(),
        content_type: "image/jpeg".into(),
    };
    let meta = CreateDocument {
        r#type: DocumentType::Ktp,
        description: Some("KTP front".into()),
    };

    // Step by step, with the file also sent as a multipart part.
    let created = client
        .create_document(&meta, Some(file(b"first")))
        .await
        .expect("create");
    assert!(created.id.len() >= 6);
    assert_eq!(
        client.get_document(&created.id).await.expect("get").status,
        DocumentStatus::PendingUpload
    );
    let error = client.download_document(&created.id).await.unwrap_err();
    assert!(
        matches!(error, Error::Rejected { status: 404, .. }),
        "{error:?}"
    );
    client
        .upload_to_presigned_url(&created.presigned_url, &file(b"first"))
        .await
        .expect("upload");
    let document = client.get_document(&created.id).await.expect("get");
    assert_eq!(
        (document.status, document.size),
        (DocumentStatus::Uploaded, Some(5))
    );

    // Both steps at once, then a streamed download.
    let content: &'static [u8] = &[7_u8; 300_000];
    let uploaded = client
        .upload_document(&meta, file(content))
        .await
        .expect("upload document");
    let download = client
        .download_document(&uploaded.id)
        .await
        .expect("download");
    assert_eq!(download.content_type(), Some("application/octet-stream"));
    let mut stream = download.bytes_stream();
    let mut received = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(received.as_ref(), content);

    let patched = client
        .update_documents(&[DocumentPatch {
            id: created.id.clone(),
            r#type: DocumentType::Selfie,
            description: Some("selfie".into()),
        }])
        .await
        .expect("patch");
    assert_eq!(
        (patched.len(), &patched[0].r#type),
        (1, &DocumentType::Selfie)
    );
    assert_eq!(sandbox.ledger().requests["POST /api/documents"], 2);
    sandbox.shutdown().await;
}
