//! Every request of `onboard-borrower`, repeated after an unknown outcome (its answer lost,
//! a worker that died mid-call), against each answer its repeat can meet: the `2xx`, the
//! `4xx` its own first send causes (Finfra's state moved on), `409`, `404`. Where Finfra's
//! state shows the work was done, the onboarding carries on, never to `needs_attention`;
//! a `409` is taken for "applied" only after an unknown outcome of our own request.

use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::document::DocumentType;
use finfra_api::model::ekyc::{
    HubCheckStatus, HubProvider, KycSubmissionStatus, Liveness, RdfBiometricStatus,
};
use workflow::ActionKind::{Call, Complete, Fail, NeedsAttention, Wait};
use workflow::onboard::OnboardState;
use workflow::{Action, CallFailure, CallPurpose, Event, FinfraResponse, Status};

use crate::common::*;
use crate::table::{Row, T, row, run};

/// The state after the step's call was interrupted (its worker died mid-call): the next
/// send is a repeat whose first send may have been applied.
fn repeat(state: &OnboardState) -> OnboardState {
    drive(state, &[Event::CallInterrupted])
}

fn reason_code(t: &T) -> &str {
    match &t.action {
        Action::Fail { reason } | Action::NeedsAttention { reason, .. } => &reason.code,
        _ => "",
    }
}

const EXISTS: &str = "Borrower with this identity number already exists";

pub fn rows() -> Vec<Row> {
    vec![
        // ekyc_ocr and ekyc_biometric: repeatable (an orphan session is harmless); no read can
        // tell more, so a refusal is judged as on a first send (the image is at fault).
        row(
            "ekyc_ocr repeated: sent again",
            p_ocr(),
            Event::CallInterrupted,
            "ekyc_ocr",
            Call,
        )
        .request("ocr"),
        row(
            "ekyc_ocr repeated, 2xx",
            repeat(&p_ocr()),
            ok(ocr(Some(NIK), 0.97)),
            "ekyc_biometric",
            Call,
        ),
        row(
            "ekyc_ocr repeated, 400: the image is refused",
            repeat(&p_ocr()),
            err(CallFailure::rejected(400, "Unreadable image")),
            "failed",
            Fail,
        )
        .check(|t| assert_eq!(reason_code(t), "finfra_rejected")),
        row(
            "ekyc_biometric repeated, 2xx",
            repeat(&p_biometric()),
            ok(biometric(Liveness::Passed, 0.93)),
            "create_borrower",
            Call,
        ),
        // create_document / upload_document: a second document is an orphan; the same bytes
        // to the same URL.
        row(
            "create_document repeated, 2xx",
            repeat(&b_create_npwp()),
            ok(created_document("doc-npwp-2", DocumentType::Npwp)),
            "upload_document",
            Call,
        ),
        row(
            "upload_document repeated, 2xx",
            repeat(&b_upload_npwp()),
            ok(FinfraResponse::UploadDocument),
            "create_document",
            Call,
        ),
        row(
            "upload_document repeated, 403 (the URL expired): the document is created again",
            repeat(&b_upload_npwp()),
            err(CallFailure::rejected(403, "Request has expired")),
            "create_document",
            Call,
        ),
        // create_borrower (no KYC session): no read can tell; the create itself is the read,
        // and Finfra deduplicates it on the NIK.
        row(
            "create_borrower repeated: the create is the read",
            b_create(),
            Event::CallInterrupted,
            "create_borrower",
            Call,
        )
        .request("create_borrower")
        .purpose(CallPurpose::Reconcile)
        .status(Status::Ambiguous),
        row(
            "create_borrower repeated, 2xx",
            repeat(&b_create()),
            ok(FinfraResponse::CreateBorrower(accepted())),
            "await_user_created",
            Wait,
        ),
        row(
            "create_borrower repeated, 409: our own first send was applied",
            repeat(&b_create()),
            err(CallFailure::conflict(EXISTS)),
            "await_user_created",
            Wait,
        )
        .check(|t| assert!(t.state.borrower.create_accepted)),
        row(
            "create_borrower on a first send, 409: someone else's borrower",
            b_create(),
            err(CallFailure::conflict(EXISTS)),
            "needs_attention",
            NeedsAttention,
        )
        .check(|t| assert_eq!(reason_code(t), "borrower_exists_at_finfra")),
        // create_borrower on the KYC session: the submission is read first.
        row(
            "create_borrower (KYC) repeated: the submission is read",
            p_create(),
            Event::CallInterrupted,
            "create_borrower",
            Call,
        )
        .request("get_kyc_submission"),
        row(
            "create_borrower (KYC) repeated, the session has the borrower: applied",
            repeat(&p_create()),
            ok(submission(KycSubmissionStatus::Draft, Some(USER), &[])),
            "submit_kyc",
            Call,
        ),
        row(
            "create_borrower (KYC) repeated, no borrower yet: sent again",
            repeat(&p_create()),
            ok(submission(KycSubmissionStatus::Draft, None, &[])),
            "create_borrower",
            Call,
        )
        .request("create_borrower_for_kyc"),
        row(
            "create_borrower (KYC) sent again, 409: our own first send was applied",
            drive(
                &repeat(&p_create()),
                &[ok(submission(KycSubmissionStatus::Draft, None, &[]))],
            ),
            err(CallFailure::conflict(EXISTS)),
            "submit_kyc",
            Call,
        ),
        row(
            "create_borrower (KYC) sent again, 2xx",
            drive(
                &repeat(&p_create()),
                &[ok(submission(KycSubmissionStatus::Draft, None, &[]))],
            ),
            ok(FinfraResponse::CreateBorrowerForKyc(accepted())),
            "submit_kyc",
            Call,
        ),
        row(
            "create_borrower (KYC) on a first send, 409: someone else's borrower",
            p_create(),
            err(CallFailure::conflict(EXISTS)),
            "needs_attention",
            NeedsAttention,
        )
        .check(|t| assert_eq!(reason_code(t), "borrower_exists_at_finfra")),
        // submit_kyc: the submission is read first.
        row(
            "submit_kyc repeated: the submission is read",
            p_submit(),
            Event::CallInterrupted,
            "submit_kyc",
            Call,
        )
        .request("get_kyc_submission"),
        row(
            "submit_kyc repeated, SUBMITTED: applied",
            repeat(&p_submit()),
            ok(submission(KycSubmissionStatus::Submitted, None, &[])),
            "await_user_created",
            Wait,
        ),
        row(
            "submit_kyc repeated, PROCESSING with the id: applied, and the id is known",
            repeat(&p_submit()),
            ok(submission(KycSubmissionStatus::Processing, Some(USER), &[])),
            "hub_check",
            Call,
        ),
        row(
            "submit_kyc repeated, DRAFT: sent again",
            repeat(&p_submit()),
            ok(submission(KycSubmissionStatus::Draft, None, &[])),
            "submit_kyc",
            Call,
        )
        .request("submit_kyc"),
        row(
            "submit_kyc sent again, 400: read before believing",
            drive(
                &repeat(&p_submit()),
                &[ok(submission(KycSubmissionStatus::Draft, None, &[]))],
            ),
            err(CallFailure::rejected(400, "KYC session already submitted")),
            "submit_kyc",
            Call,
        )
        .request("get_kyc_submission"),
        row(
            "submit_kyc sent again, 400, the read shows it submitted: applied",
            drive(
                &repeat(&p_submit()),
                &[
                    ok(submission(KycSubmissionStatus::Draft, None, &[])),
                    err(CallFailure::rejected(400, "KYC session already submitted")),
                ],
            ),
            ok(submission(KycSubmissionStatus::Submitted, None, &[])),
            "await_user_created",
            Wait,
        ),
        // hub_check, credit_history: reads; rdf_biometric, credit_score: repeatable.
        row(
            "hub_check repeated: read again",
            p_hub(),
            Event::CallInterrupted,
            "hub_check",
            Call,
        )
        .request("hub_status"),
        row(
            "hub_check repeated, 2xx",
            repeat(&p_hub()),
            ok(hub(HubProvider::Verihubs, HubCheckStatus::Passed)),
            "rdf_biometric",
            Call,
        ),
        row(
            "rdf_biometric repeated, 2xx",
            repeat(&p_rdf()),
            ok(rdf(RdfBiometricStatus::Verified)),
            "await_user_verified",
            Wait,
        ),
        row(
            "credit_score repeated, 2xx",
            repeat(&p_score()),
            ok(score(700, 0, 0)),
            "credit_history",
            Call,
        ),
        row(
            "credit_history repeated, 2xx",
            repeat(&p_history()),
            ok(history(&[("CURRENT", 0)])),
            "approve_borrower",
            Call,
        ),
        // approve_borrower: the borrower is read first.
        row(
            "approve_borrower repeated: the borrower is read",
            p_approve(),
            Event::CallInterrupted,
            "approve_borrower",
            Call,
        )
        .request("get_borrower"),
        row(
            "approve_borrower repeated, APPROVED_BY_PARTNER: applied",
            repeat(&p_approve()),
            ok(get_borrower(BorrowerStatus::ApprovedByPartner)),
            "await_user_approved",
            Wait,
        ),
        row(
            "approve_borrower repeated, APPROVED: applied and final",
            repeat(&p_approve()),
            ok(get_borrower(BorrowerStatus::Approved)),
            "approved",
            Complete,
        ),
        row(
            "approve_borrower repeated, VERIFIED: sent again",
            repeat(&p_approve()),
            ok(get_borrower(BorrowerStatus::Verified)),
            "approve_borrower",
            Call,
        )
        .request("approve_borrower"),
        row(
            "approve_borrower sent again, 409: read",
            drive(
                &repeat(&p_approve()),
                &[ok(get_borrower(BorrowerStatus::Verified))],
            ),
            err(CallFailure::conflict("Borrower is REJECTED")),
            "approve_borrower",
            Call,
        )
        .request("get_borrower"),
        row(
            "approve_borrower sent again, 409, REJECTED meanwhile: failed with Finfra's reason",
            drive(
                &repeat(&p_approve()),
                &[
                    ok(get_borrower(BorrowerStatus::Verified)),
                    err(CallFailure::conflict("Borrower is REJECTED")),
                ],
            ),
            ok(get_borrower(BorrowerStatus::Rejected)),
            "failed",
            Fail,
        )
        .check(|t| assert_eq!(reason_code(t), "kyc_rejected")),
        row(
            "approve_borrower repeated, 404: read before believing",
            drive(
                &repeat(&p_approve()),
                &[ok(get_borrower(BorrowerStatus::Verified))],
            ),
            err(CallFailure::rejected(404, "Borrower not found")),
            "approve_borrower",
            Call,
        )
        .request("get_borrower"),
        // block_borrower: the borrower is read first.
        row(
            "block_borrower repeated: the borrower is read",
            p_block(),
            Event::CallInterrupted,
            "block_borrower",
            Call,
        )
        .request("get_borrower"),
        row(
            "block_borrower repeated, BLOCKED: applied, declined",
            repeat(&p_block()),
            ok(get_borrower(BorrowerStatus::Blocked)),
            "declined",
            Complete,
        ),
        row(
            "block_borrower repeated, VERIFIED: sent again",
            repeat(&p_block()),
            ok(get_borrower(BorrowerStatus::Verified)),
            "block_borrower",
            Call,
        )
        .request("block_borrower"),
        row(
            "block_borrower sent again, 409, BLOCKED meanwhile: declined",
            drive(
                &repeat(&p_block()),
                &[
                    ok(get_borrower(BorrowerStatus::Verified)),
                    err(CallFailure::conflict("Borrower is BLOCKED")),
                ],
            ),
            ok(get_borrower(BorrowerStatus::Blocked)),
            "declined",
            Complete,
        ),
    ]
}

#[test]
fn repeats_after_an_unknown_outcome() {
    run(&rows());
}
