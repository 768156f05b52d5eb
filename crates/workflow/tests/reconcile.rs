//! `reconcile-loans`, decision by decision: pages read and compared, findings and nudges
//! handed to the commit, the loans no page showed read one by one, money findings that stop
//! the run for a person, and a run that resumes at its page.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::{Value, json};

use finfra_api::model::loan::{Loan, LoanPage};
use workflow::reconcile::{FindingKind, KnownLoan, KnownLoans, ReconcileState};
use workflow::{
    Action, CallFailure, Engine, Event, FinfraRequest, FinfraResponse, Handled, Prior, Registry,
    Status, Stored, Workflow, WorkflowId,
};

fn t(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 8, 0, 0).single().unwrap() + TimeDelta::seconds(n)
}

fn start(input: Value) -> ReconcileState {
    let request = workflow::ReconcileLoans::validate_input(&input, &Registry::default(), t(0))
        .expect("valid input");
    workflow::ReconcileLoans::start(
        &WorkflowId::new("run-1").unwrap(),
        request,
        &Prior::default(),
        t(0),
    )
    .state
}

fn loan(id: &str, status: &str, reference: Option<&str>, paid: &str) -> Loan {
    serde_json::from_value(json!({
        "unique_id": id, "user_id": "u", "type": "SINGLE_PAYMENT",
        "status": status, "principal_amount": "1000000", "interest_amount": "10000",
        "fee_amount": "0", "total_amount": "1010000", "currency": "IDR",
        "created_at": "2026-12-01T00:00:00Z",
        "disbursement": {"status": if reference.is_some() { "DISBURSED" } else { "PENDING" },
                         "reference": reference},
        "schedule": [{"sequence": 1, "due_date": "2027-01-01", "principal": "1000000",
                      "interest": "10000", "total": "1010000", "paid_amount": paid,
                      "status": "UNPAID"}]
    }))
    .unwrap()
}

fn ours(id: &str, workflow: &str, loan_status: &str, reference: Option<&str>) -> KnownLoan {
    KnownLoan {
        workflow_id: workflow.to_owned(),
        loan_unique_id: id.to_owned(),
        status: "waiting".to_owned(),
        loan_status: Some(loan_status.to_owned()),
        disbursement_reference: reference.map(str::to_owned),
        disbursement_requested: true,
        amount_paid: Some(rust_decimal::Decimal::ZERO),
    }
}

fn page(loans: Vec<Loan>, number: u32, size: u32, total: u64, known: KnownLoans) -> Event {
    Event::CallSucceeded(FinfraResponse::ListLoans(
        LoanPage {
            data: loans,
            page_number: number,
            page_size: size,
            total_items: total,
        },
        known,
    ))
}

fn decide(state: &ReconcileState, event: Event, at: i64) -> workflow::Transition<ReconcileState> {
    workflow::ReconcileLoans::decide(state, &event, t(at))
}

fn page_asked(action: &Action) -> Option<u32> {
    match action {
        Action::Call {
            request: FinfraRequest::ListLoans { query },
            ..
        } => query.page_number,
        _ => None,
    }
}

#[test]
fn a_run_reads_page_after_page_and_hands_its_findings_to_the_commit() {
    let run = start(json!({"page_size": 2}));
    assert_eq!(page_asked(&workflow::ReconcileLoans::action(&run)), Some(1));
    let first = decide(
        &run,
        page(
            vec![
                loan("op-behind", "DISBURSED", Some("ref-1"), "0"),
                loan("op-orphan", "PENDING", None, "0"),
            ],
            1,
            2,
            3,
            KnownLoans {
                loans: vec![ours("op-behind", "wf-1", "DISBURSING", None)],
                unseen: Vec::new(),
            },
        ),
        1,
    );
    assert_eq!(first.handled, Handled::Advanced);
    assert_eq!(page_asked(&first.action), Some(2), "then page 2");
    let kinds: Vec<_> = first.observations.findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FindingKind::StatusDiffers,
            FindingKind::DisbursementReferenceMissing,
            FindingKind::Orphan
        ]
    );
    assert_eq!(
        first.observations.nudge,
        ["wf-1"],
        "the workflow behind reads Finfra now"
    );
    assert_eq!(first.observations.seen, ["op-behind", "op-orphan"]);
    assert!(!first.observations.complete);

    // The last page (short), with one of finflow's loans no page showed.
    let last = decide(
        &first.state,
        page(
            vec![loan("op-fine", "SIGNED", None, "0")],
            2,
            2,
            3,
            KnownLoans {
                loans: vec![ours("op-fine", "wf-2", "SIGNED", None)],
                unseen: vec![ours("op-gone", "wf-3", "SIGNED", None)],
            },
        ),
        2,
    );
    assert!(last.observations.findings.is_empty());
    let Action::Call { request, .. } = &last.action else {
        panic!(
            "expected the read of the unseen loan, got {:?}",
            last.action
        )
    };
    assert_eq!(
        request,
        &FinfraRequest::GetLoan {
            unique_id: "op-gone".into()
        }
    );

    // Finfra does not know it: a finding, and the run is done.
    let done = decide(
        &last.state,
        Event::CallFailed(CallFailure::rejected(404, "Loan not found")),
        3,
    );
    assert_eq!(
        done.observations.findings[0].kind,
        FindingKind::MissingAtFinfra
    );
    assert!(done.observations.complete);
    assert!(
        matches!(done.action, Action::Complete { .. }),
        "{:?}",
        done.action
    );
    let summary = workflow::ReconcileLoans::summary(&done.state);
    assert_eq!(summary.status, Status::Completed);
    assert_eq!(summary.facts["loans"], 3);
    assert_eq!(summary.facts["findings"], 4);
    assert_eq!(summary.facts["pages"], 2);
}

#[test]
fn a_money_finding_stops_the_run_for_a_person_at_its_end() {
    let run = start(json!({}));
    let t1 = decide(
        &run,
        page(
            vec![loan("op-twice", "DISBURSED", Some("ref-2"), "0")],
            1,
            100,
            1,
            KnownLoans {
                loans: vec![ours("op-twice", "wf-1", "DISBURSED", Some("ref-1"))],
                unseen: Vec::new(),
            },
        ),
        1,
    );
    assert!(t1.observations.findings[0].money);
    let Action::NeedsAttention { reason, .. } = &t1.action else {
        panic!("expected needs_attention, got {:?}", t1.action)
    };
    assert_eq!(reason.code, "money_findings");
    // A person looked: resolving closes the run.
    let closed = decide(
        &t1.state,
        Event::Resolve {
            by: "ops".into(),
            reason: "checked with Finfra".into(),
            data: json!({"retry": true}),
        },
        2,
    );
    assert!(
        matches!(closed.action, Action::Complete { .. }),
        "{:?}",
        closed.action
    );
}

#[test]
fn a_run_killed_mid_way_resumes_at_its_page() {
    let engine = Engine::new(Registry::default());
    let id = WorkflowId::new("run-2").unwrap();
    let input = json!({"page_size": 1});
    let mut decision = engine
        .start("reconcile-loans", &id, &input, &Prior::default(), t(0))
        .unwrap();
    for n in 1..=2 {
        let loans = vec![loan(&format!("op-{n:04}"), "PENDING", None, "0")];
        decision = engine
            .decide(
                "reconcile-loans",
                Stored::new(&decision.state, &input),
                &page(loans, n, 1, 5, KnownLoans::default()),
                t(i64::from(n)),
            )
            .unwrap();
    }
    // The worker died with page 3 asked for: whoever takes the run over asks for page 3.
    let resumed = engine
        .decide(
            "reconcile-loans",
            Stored::new(&decision.state, &input),
            &Event::CallInterrupted,
            t(10),
        )
        .unwrap();
    assert_eq!(page_asked(&resumed.action), Some(3));
    // A 429 on a page waits for Retry-After, then asks for the same page.
    let throttled = engine
        .decide(
            "reconcile-loans",
            Stored::new(&resumed.state, &input),
            &Event::CallFailed(CallFailure::rate_limited(Some(
                std::time::Duration::from_secs(2),
            ))),
            t(11),
        )
        .unwrap();
    assert!(matches!(throttled.action, Action::SleepUntil { at, .. } if at == t(13)));
    let again = engine
        .decide(
            "reconcile-loans",
            Stored::new(&throttled.state, &input),
            &Event::Wake,
            t(13),
        )
        .unwrap();
    assert_eq!(page_asked(&again.action), Some(3));
}

#[test]
fn bad_filters_are_named() {
    let engine = Engine::new(Registry::default());
    let err = engine
        .validate(
            "reconcile-loans",
            &json!({"page_size": 0, "min_amount": "5", "max_amount": "1"}),
            t(0),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("page_size") && err.contains("max_amount"),
        "{err}"
    );
}
