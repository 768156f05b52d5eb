//! Loans as the sandbox would answer them, callbacks, payments, inputs, and states at each
//! step of an origination reached by driving the machine itself.

#![allow(dead_code)]

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use finfra_api::callback::{CallbackData, CallbackTitle, StatusCallback, VirtualAccountPayment};
use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::loan::{DisbursementAccepted, Loan, LoanStatus, SigningSession};
use finfra_api::model::virtual_account::{BankCode, VirtualAccount};
use workflow::originate::OriginateState;
use workflow::{
    Action, CallbackEvent, Event, FinfraResponse, Kind, OriginateLoan, Outcome, Status, Workflow,
    WorkflowFinished, WorkflowId,
};

use crate::common::{USER, WORKFLOW, at, registry, t0};
use crate::table::T;

/// The loan's `unique_id`: the create step's operation key of workflow `WORKFLOW`.
pub fn uid() -> String {
    OriginateLoan::unique_id(&WorkflowId::new(WORKFLOW).unwrap())
        .as_str()
        .to_owned()
}

pub const ONBOARDING_KEY: &str = "budi-onboarding";
pub const VA: &str = "va-0f1e2d3c4b";
pub const DAY: i64 = 86_400;

pub fn d(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

pub fn account() -> Value {
    json!({"holder_name": "Budi Santoso", "number": "123123123213", "swift_code": "BNINIDJA"})
}

/// personal-single-payment: 5 000 000 + 150 000 interest, due 30 days after t0.
pub fn single_input() -> Value {
    json!({
        "definition": "personal-single-payment",
        "borrower": {"user_id": USER},
        "loan": {
            "type": "SINGLE_PAYMENT", "principal_amount": "5000000.00",
            "interest_amount": "150000.00", "due_date": "2026-02-04", "purpose": "Renovation"
        },
        "disbursement_account": account()
    })
}

/// personal-bnpl: 3 000 000 over 3 months at 1.75 % a month, first due 2026-02-05.
pub fn bnpl_input() -> Value {
    json!({
        "definition": "personal-bnpl",
        "borrower": {"onboarding": ONBOARDING_KEY},
        "loan": {
            "type": "BNPL", "principal_amount": "3000000.00", "tenor": 3, "frequency": "MONTHLY",
            "interest_rate": "0.0175", "first_due_date": "2026-02-05", "merchant_name": "Toko Maju"
        },
        "disbursement_account": account(),
        "virtual_account_bank": "MANDIRI"
    })
}

pub fn start(input: &Value) -> OriginateState {
    let input = OriginateLoan::validate_input(input, &registry(), t0()).expect("a valid input");
    OriginateLoan::start(
        &WorkflowId::new(WORKFLOW).unwrap(),
        input,
        &workflow::Prior::default(),
        t0(),
    )
    .state
}

pub fn decide(state: &OriginateState, event: &Event, now: DateTime<Utc>) -> T {
    OriginateLoan::decide(state, event, now)
}

/// Applies `events` at `t0`, one after the other.
pub fn drive(state: &OriginateState, events: &[Event]) -> OriginateState {
    events.iter().fold(state.clone(), |state, event| {
        decide(&state, event, t0()).state
    })
}

/// Applies `event` at `now`.
pub fn drive_at(state: &OriginateState, event: Event, now: DateTime<Utc>) -> OriginateState {
    decide(state, &event, now).state
}

pub fn ok(response: FinfraResponse) -> Event {
    Event::CallSucceeded(response)
}

pub fn err(failure: workflow::CallFailure) -> Event {
    Event::CallFailed(failure)
}

// Finfra's answers.

pub fn borrower(status: BorrowerStatus, kind: &str) -> FinfraResponse {
    FinfraResponse::GetBorrower(
        serde_json::from_value(json!({
            "id": USER, "partner_id": "1507b694-e78e-4fc9-ac28-68d72fba45e9",
            "status": status.as_str(), "type": kind, "authorised_signatory": {},
            "created_at": "2026-01-05T08:00:00Z"
        }))
        .unwrap(),
    )
}

pub fn approved() -> FinfraResponse {
    borrower(BorrowerStatus::Approved, "PERSONAL")
}

/// A loan object as JSON: the single-payment loan, or the BNPL one (`bnpl`).
pub fn loan_json(bnpl: bool, status: &str) -> Value {
    let schedule: Vec<Value> = if bnpl {
        ["2026-02-05", "2026-03-05", "2026-04-05"]
            .iter()
            .enumerate()
            .map(|(i, due)| json!({"sequence": i + 1, "due_date": due, "principal": "1000000.00",
                "interest": "52500.00", "total": "1052500.00", "paid_amount": "0.00", "status": "UNPAID"}))
            .collect()
    } else {
        vec![
            json!({"sequence": 1, "due_date": "2026-02-04", "principal": "5000000.00", "interest": "150000.00",
                "total": "5150000.00", "paid_amount": "0.00", "status": "UNPAID"}),
        ]
    };
    let (principal, interest, total) = if bnpl {
        ("3000000.00", "157500.00", "3157500.00")
    } else {
        ("5000000.00", "150000.00", "5150000.00")
    };
    json!({
        "unique_id": uid(), "user_id": USER, "type": if bnpl { "BNPL" } else { "SINGLE_PAYMENT" },
        "status": status, "principal_amount": principal, "interest_amount": interest,
        "total_amount": total, "currency": "IDR", "created_at": "2026-01-05T08:00:00Z",
        "signing": {"status": match status { "PENDING" => "PENDING", "SIGNING" => "SIGNING", _ => "SIGNED" }},
        "disbursement": {"status": "PENDING"},
        "virtual_account": null,
        "schedule": schedule
    })
}

pub fn to_loan(value: Value) -> Loan {
    serde_json::from_value(value).expect("a loan")
}

/// The single-payment loan in `status`, with no disbursement.
pub fn loan(status: &str) -> Loan {
    to_loan(loan_json(false, status))
}

/// The single-payment loan with its disbursement in `disbursement` (`DISBURSING`,
/// `DISBURSED`, `FAILED`) under `reference`.
pub fn loan_disbursement(status: &str, disbursement: &str, reference: &str) -> Loan {
    let mut v = loan_json(false, status);
    v["disbursement"] = json!({"status": disbursement, "reference": reference,
        "failure_reason": (disbursement == "FAILED").then_some("Account closed")});
    to_loan(v)
}

/// The single-payment loan, DISBURSED, with `paid` paid by Finfra's account.
pub fn loan_paid_amount(status: &str, paid: &str) -> Loan {
    let mut v = loan_json(false, status);
    v["disbursement"] = json!({"status": "DISBURSED", "reference": "DISB-1"});
    v["schedule"][0]["paid_amount"] = json!(paid);
    to_loan(v)
}

pub fn get_loan(loan: Loan) -> FinfraResponse {
    FinfraResponse::GetLoan(loan)
}

pub fn created(bnpl: bool) -> FinfraResponse {
    if bnpl {
        FinfraResponse::CreateBnplLoan(to_loan(loan_json(true, "PENDING")))
    } else {
        FinfraResponse::CreateSinglePaymentLoan(loan("PENDING"))
    }
}

pub fn signing() -> FinfraResponse {
    FinfraResponse::InitiateSigning(SigningSession {
        unique_id: uid(),
        status: LoanStatus::Signing,
        signing_url: "https://sign.example/s/123".to_owned(),
        expires_at: at(DAY),
    })
}

pub fn disbursing(reference: &str) -> FinfraResponse {
    FinfraResponse::DisburseLoan(DisbursementAccepted {
        unique_id: uid(),
        status: LoanStatus::Disbursing,
        reference: Some(reference.to_owned()),
    })
}

pub fn virtual_account() -> FinfraResponse {
    FinfraResponse::RequestVirtualAccount(VirtualAccount {
        external_id: VA.to_owned(),
        loan_unique_id: uid(),
        bank_code: BankCode::Bni,
        account_number: "88081234567890".to_owned(),
        name: "BUDI SANTOSO".to_owned(),
        expected_amount: d("5150000.00"),
        expiration_date: at(365 * DAY),
    })
}

pub fn rejected_loan() -> FinfraResponse {
    FinfraResponse::RejectLoan(loan("REJECTED"))
}

// Callbacks.

pub fn loan_callback(title: CallbackTitle, event_id: &str, data: CallbackData) -> Event {
    let status = title
        .loan_event()
        .map_or_else(String::new, |e| e.event.status().as_str().to_owned());
    Event::Callback(CallbackEvent::Status(StatusCallback {
        event_id: event_id.to_owned(),
        callback_title: title,
        occurred_at: t0(),
        user_id: Some(USER.to_owned()),
        identity_number: None,
        kyc_id: None,
        loan_unique_id: Some(uid()),
        status,
        data,
    }))
}

/// A loan callback with nothing in `data`; its event id is the title.
pub fn cb(title: CallbackTitle) -> Event {
    let id = format!("evt-{title}");
    loan_callback(title, &id, CallbackData::default())
}

pub fn disbursed_cb(reference: &str) -> Event {
    loan_callback(
        CallbackTitle::LoanDisbursed,
        &format!("evt-disbursed-{reference}"),
        CallbackData {
            reference: Some(reference.to_owned()),
            ..CallbackData::default()
        },
    )
}

pub fn disbursement_failed_cb(reference: &str, reason: &str) -> Event {
    loan_callback(
        CallbackTitle::LoanDisbursementFailed,
        &format!("evt-failed-{reference}"),
        CallbackData {
            reference: Some(reference.to_owned()),
            reason: Some(reason.to_owned()),
            ..CallbackData::default()
        },
    )
}

pub fn user_callback(title: CallbackTitle) -> Event {
    Event::Callback(CallbackEvent::Status(StatusCallback {
        event_id: format!("evt-{title}"),
        callback_title: title.clone(),
        occurred_at: t0(),
        user_id: Some(USER.to_owned()),
        identity_number: None,
        kyc_id: None,
        loan_unique_id: None,
        status: title
            .user_event()
            .map_or_else(String::new, |e| e.status().as_str().to_owned()),
        data: CallbackData::default(),
    }))
}

pub fn payment(id: &str, amount: &str) -> Event {
    Event::Callback(CallbackEvent::VirtualAccountPayment(
        VirtualAccountPayment {
            id: id.to_owned(),
            external_id: VA.to_owned(),
            payment_id: format!("pg-{id}"),
            account_number: "88081234567890".to_owned(),
            bank_code: BankCode::Bni,
            amount: d(amount),
            transaction_timestamp: t0(),
        },
    ))
}

pub fn onboarding_finished(status: Status, outcome: Option<Outcome>, key: &str) -> Event {
    let reason = (status != Status::Completed)
        .then(|| workflow::Reason::new("kyc_rejected", "Finfra rejected the borrower's KYC"));
    Event::Callback(CallbackEvent::Workflow(WorkflowFinished {
        workflow_id: "wf-onboarding-1".to_owned(),
        kind: Kind::OnboardBorrower.as_str().to_owned(),
        business_key: key.to_owned(),
        status,
        state: "approved".to_owned(),
        outcome,
        reason,
    }))
}

pub fn onboarding_approved() -> Event {
    onboarding_finished(
        Status::Completed,
        Some(Outcome::BorrowerApproved {
            user_id: workflow::UserId::new(USER).unwrap(),
        }),
        ONBOARDING_KEY,
    )
}

pub fn cancel() -> Event {
    Event::Cancel {
        by: "ops@lender".to_owned(),
        reason: "customer withdrew".to_owned(),
    }
}

pub fn resolve(data: Value) -> Event {
    Event::Resolve {
        by: "ops@lender".to_owned(),
        reason: "checked at Finfra".to_owned(),
        data,
    }
}

// States along the single-payment path (borrower given by id).

pub fn s_check() -> OriginateState {
    start(&single_input())
}

pub fn s_create() -> OriginateState {
    drive(&s_check(), &[ok(approved())])
}

pub fn s_signing() -> OriginateState {
    drive(&s_create(), &[ok(created(false))])
}

pub fn s_await_signed() -> OriginateState {
    drive(&s_signing(), &[ok(signing())])
}

pub fn s_disburse() -> OriginateState {
    drive(&s_await_signed(), &[cb(CallbackTitle::LoanSigned)])
}

pub fn s_await_disbursement() -> OriginateState {
    drive(&s_disburse(), &[ok(disbursing("DISB-1"))])
}

pub fn s_va() -> OriginateState {
    drive(&s_await_disbursement(), &[disbursed_cb("DISB-1")])
}

pub fn s_repaying() -> OriginateState {
    drive(&s_va(), &[ok(virtual_account())])
}

/// The bank refused the first disbursement: needs attention.
pub fn s_refused() -> OriginateState {
    drive(
        &s_await_disbursement(),
        &[disbursement_failed_cb("DISB-1", "Account closed")],
    )
}

// The BNPL path (borrower from an onboarding).

pub fn b_await_onboarding() -> OriginateState {
    start(&bnpl_input())
}

pub fn b_check() -> OriginateState {
    drive(&b_await_onboarding(), &[onboarding_approved()])
}

pub fn b_create() -> OriginateState {
    drive(&b_check(), &[ok(approved())])
}

pub fn b_await_signed() -> OriginateState {
    drive(&b_create(), &[ok(created(true)), ok(signing())])
}

// Reading transitions.

pub fn reason_code(t: &T) -> &str {
    match &t.action {
        Action::Fail { reason } | Action::NeedsAttention { reason, .. } => &reason.code,
        _ => "",
    }
}

pub fn attempt(t: &T) -> u32 {
    match &t.action {
        Action::Call { attempt, .. } => *attempt,
        _ => 0,
    }
}

/// Whether the action sends a disbursement.
pub fn sends_disbursement(action: &Action) -> bool {
    matches!(
        action.request(),
        Some(workflow::FinfraRequest::DisburseLoan { .. })
    )
}

pub fn after_days(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(n * DAY)
}
