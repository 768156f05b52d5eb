//! Callbacks are at least once and unordered: duplicates, early and late ones, and ones
//! for someone else change nothing they should not.

use finfra_api::callback::CallbackTitle;
use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::ekyc::{HubCheckStatus, HubProvider, RdfBiometricStatus};
use workflow::ActionKind::{Call, Complete, Fail, Wait};
use workflow::{CallbackEvent, Event, Status};

use crate::common::*;
use crate::table::{Row, row, run};

pub fn rows() -> Vec<Row> {
    vec![
        // Out of order: user_verified overtakes a lost user_created.
        row(
            "user_verified before user_created gives the id",
            p_await_created(),
            callback(CallbackTitle::UserVerified),
            "hub_check",
            Call,
        )
        .check(|t| {
            assert_eq!(
                t.state.borrower.user_id.as_ref().map(|u| u.as_str()),
                Some(USER)
            );
            assert!(
                t.state
                    .borrower
                    .statuses
                    .iter()
                    .any(|s| s.status == BorrowerStatus::Verified)
            );
        }),
        row(
            "verification already known: the wait is skipped",
            drive(
                &p_await_created(),
                &[
                    callback(CallbackTitle::UserVerified),
                    ok(hub(HubProvider::Verihubs, HubCheckStatus::Passed)),
                ],
            ),
            ok(rdf(RdfBiometricStatus::Verified)),
            "credit_score",
            Call,
        ),
        row(
            "user_rejected before user_created: failed with the reason",
            p_await_created(),
            rejected_callback("KTP data does not match the Dukcapil record"),
            "failed",
            Fail,
        )
        .check(|t| {
            let workflow::Action::Fail { reason } = &t.action else {
                panic!()
            };
            assert_eq!(reason.code, "kyc_rejected");
            assert!(reason.message.contains("Dukcapil"));
        }),
        row(
            "user_rejected while waiting for verification",
            p_await_verified(),
            rejected_callback("blurry KTP"),
            "failed",
            Fail,
        ),
        row(
            "user_blocked while waiting for verification",
            p_await_verified(),
            callback(CallbackTitle::UserBlocked),
            "failed",
            Fail,
        ),
        row(
            "user_approved overtakes user_verified",
            p_await_verified(),
            callback(CallbackTitle::UserApproved),
            "credit_score",
            Call,
        ),
        // Duplicates.
        row(
            "duplicate user_created while waiting for verification",
            p_await_verified(),
            callback(CallbackTitle::UserCreated),
            "await_user_verified",
            Wait,
        )
        .ignored(),
        row(
            "duplicate user_created during a hub check",
            p_hub(),
            callback(CallbackTitle::UserCreated),
            "hub_check",
            Call,
        )
        .ignored()
        .request("hub_status"),
        row(
            "duplicate user_verified after it was handled",
            p_score(),
            callback(CallbackTitle::UserVerified),
            "credit_score",
            Call,
        )
        .ignored(),
        row(
            "duplicate user_approved after completion",
            drive(
                &p_await_approved(),
                &[callback(CallbackTitle::UserApproved)],
            ),
            callback(CallbackTitle::UserApproved),
            "approved",
            Complete,
        )
        .ignored(),
        // Early: recorded in a call phase, used by the wait later.
        row(
            "user_verified during a hub check is recorded",
            p_hub(),
            callback(CallbackTitle::UserVerified),
            "hub_check",
            Call,
        )
        .check(|t| {
            assert!(
                t.state
                    .borrower
                    .statuses
                    .iter()
                    .any(|s| s.status == BorrowerStatus::Verified)
            )
        }),
        // Not ours.
        row(
            "user_created for another NIK",
            p_await_created(),
            callback_for(CallbackTitle::UserCreated, OTHER_USER, OTHER_NIK),
            "await_user_created",
            Wait,
        )
        .ignored(),
        row(
            "user_verified for another user id",
            p_await_verified(),
            callback_for(CallbackTitle::UserVerified, OTHER_USER, NIK),
            "await_user_verified",
            Wait,
        )
        .ignored(),
        row(
            "a credit_score callback",
            p_await_verified(),
            credit_score_callback(),
            "await_user_verified",
            Wait,
        )
        .ignored(),
        // While a non-idempotent call is outstanding, an event means the executor lost it.
        row(
            "a callback while create is outstanding: reconcile",
            p_create(),
            callback(CallbackTitle::UserCreated),
            "create_borrower",
            Call,
        )
        .status(Status::Ambiguous)
        .request("get_kyc_submission"),
        row(
            "BUSINESS: user_created by NIK, then the id",
            b_await_created(),
            callback(CallbackTitle::UserCreated),
            "hub_check",
            Call,
        ),
    ]
}

fn credit_score_callback() -> Event {
    let mut callback = status_callback(CallbackTitle::CreditScore, USER, NIK, None);
    callback.status = "COMPLETED".to_owned();
    Event::Callback(CallbackEvent::Status(callback))
}

#[test]
fn callbacks_in_any_order() {
    run(&rows());
}
