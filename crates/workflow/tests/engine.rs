//! The executor's view: kinds by name, states as stored JSON, events and actions as JSON.
//! Walks one onboarding the way the executor will, persisting after every decision.

mod common;

use chrono::{DateTime, Utc};
use finfra_api::callback::CallbackTitle;
use finfra_api::model::borrower::BorrowerStatus;
use finfra_api::model::ekyc::{HubCheckStatus, HubProvider, Liveness, RdfBiometricStatus};
use serde_json::{Value, json};

use workflow::{
    Action, ActionKind, CallFailure, Decision, Engine, EngineError, Event, FinfraResponse, Handled,
    Status, Stored, WorkflowId,
};

use common::*;

const KIND: &str = "onboard-borrower";

/// Decides and "persists": the state and the event go through JSON, as in the store.
fn step(engine: &Engine, state: &Value, event: Event, now: DateTime<Utc>) -> Decision {
    let stored_event: Event =
        serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
    let decision = engine
        .decide(
            KIND,
            Stored::new(state, &personal_input()),
            &stored_event,
            now,
        )
        .unwrap();
    let _journal_row = json!({
        "event": stored_event.name(),
        "action": decision.action.kind(),
        "request": decision.action.request().map(|r| r.summary()),
        "note": decision.note,
    });
    decision
}

/// The events of a personal onboarding from its start to its approval, a `429` and its
/// wake-up among them.
fn approval_script() -> Vec<Event> {
    vec![
        ok(ocr(Some(NIK), 0.97)),
        ok(biometric(Liveness::Passed, 0.93)),
        err(CallFailure::rate_limited(Some(
            std::time::Duration::from_secs(2),
        ))),
        Event::Wake,
        ok(FinfraResponse::CreateBorrowerForKyc(accepted())),
        ok(kyc_submitted()),
        callback(CallbackTitle::UserCreated),
        ok(hub(HubProvider::Verihubs, HubCheckStatus::Passed)),
        ok(rdf(RdfBiometricStatus::Verified)),
        callback(CallbackTitle::UserVerified),
        ok(score(720, 0, 0)),
        ok(history(&[])),
        ok(FinfraResponse::ApproveBorrower(borrower(
            BorrowerStatus::ApprovedByPartner,
        ))),
        callback(CallbackTitle::UserApproved),
    ]
}

#[test]
fn an_onboarding_through_the_json_interface() {
    let engine = Engine::new(registry());
    let pinned = engine.validate(KIND, &personal_input(), t0()).unwrap();
    assert_eq!(pinned.to_string(), "personal-single-payment@1");
    let id = WorkflowId::new(WORKFLOW).unwrap();
    let first = engine
        .start(
            KIND,
            &id,
            &personal_input(),
            &workflow::Prior::default(),
            t0(),
        )
        .unwrap();
    assert_eq!(first.summary.state, "ekyc_ocr");
    assert_eq!(first.summary.status, Status::Running);
    assert_eq!(first.action.kind(), ActionKind::Call);

    let script = approval_script();
    let mut state = first.state;
    let mut now = t0();
    let mut states = Vec::new();
    for event in script {
        let decision = step(&engine, &state, event, now);
        assert_eq!(decision.handled, Handled::Advanced, "{}", decision.note);
        states.push(decision.summary.state.clone());
        if let Action::SleepUntil { at, .. } = decision.action {
            now = at;
        }
        state = decision.state;
    }
    assert_eq!(states.last().map(String::as_str), Some("approved"));
    assert!(states.contains(&"create_borrower".to_owned()));
    let summary = engine
        .summary(KIND, Stored::new(&state, &personal_input()))
        .unwrap();
    assert_eq!(summary.status, Status::Completed);
    assert_eq!(summary.facts["user_id"], USER);
    assert_eq!(summary.facts["borrower_status"], "APPROVED");
    assert_eq!(summary.definition.name, "personal-single-payment");
    assert_eq!(
        engine
            .action(KIND, Stored::new(&state, &personal_input()))
            .unwrap()
            .kind(),
        ActionKind::Complete
    );
}

#[test]
fn wire_shapes_of_events_and_actions() {
    let event = serde_json::to_value(ok(FinfraResponse::CreateBorrower(accepted()))).unwrap();
    assert_eq!(event["event"], "call_succeeded");
    assert_eq!(event["data"]["call"], "create_borrower");
    assert_eq!(event["data"]["response"]["status"], "success");
    let failed = serde_json::to_value(err(CallFailure::rate_limited(Some(
        std::time::Duration::from_secs(3),
    ))))
    .unwrap();
    assert_eq!(failed["data"]["retry_after_ms"], 3000);
    assert_eq!(
        serde_json::to_value(Event::Wake).unwrap(),
        json!({"event": "wake"})
    );
    let engine = Engine::new(registry());
    let first = engine
        .start(
            KIND,
            &WorkflowId::new(WORKFLOW).unwrap(),
            &business_input(),
            &workflow::Prior::default(),
            t0(),
        )
        .unwrap();
    let action = serde_json::to_value(&first.action).unwrap();
    assert_eq!(action["action"], "call");
    assert_eq!(action["request"]["call"], "create_document");
    assert_eq!(action["purpose"], "perform");
    assert!(action["operation_key"].as_str().unwrap().starts_with("op-"));
    let back: Action = serde_json::from_value(action).unwrap();
    assert_eq!(back, first.action);
}

#[test]
fn errors_for_the_executor_and_the_cli() {
    let engine = Engine::new(registry());
    let id = WorkflowId::new(WORKFLOW).unwrap();
    assert!(matches!(
        engine.start(
            "refinance-loan",
            &id,
            &personal_input(),
            &workflow::Prior::default(),
            t0()
        ),
        Err(EngineError::UnknownKind(_))
    ));
    // Every kind reads its own input: an onboarding's is not a loan's.
    assert!(matches!(
        engine.start(
            "originate-loan",
            &id,
            &personal_input(),
            &workflow::Prior::default(),
            t0()
        ),
        Err(EngineError::Input(_))
    ));
    let Err(EngineError::Input(errors)) = engine.start(
        KIND,
        &id,
        &json!({"definition": "x"}),
        &workflow::Prior::default(),
        t0(),
    ) else {
        panic!("invalid input");
    };
    assert!(errors.has("definition") && errors.has("borrower"));
    assert!(matches!(
        engine.decide(
            KIND,
            Stored::new(&json!({"phase": 1}), &personal_input()),
            &Event::Wake,
            t0()
        ),
        Err(EngineError::State { .. } | EngineError::Rebuild { .. })
    ));
    let first = engine
        .start(
            KIND,
            &id,
            &personal_input(),
            &workflow::Prior::default(),
            t0(),
        )
        .unwrap();
    let resolve = Event::Resolve {
        by: "ops".into(),
        reason: "why".into(),
        data: json!({}),
    };
    let refused = engine
        .check_command(
            KIND,
            Stored::new(&first.state, &personal_input()),
            &resolve,
            t0(),
        )
        .unwrap_err();
    assert!(
        refused.to_string().contains("not needs_attention"),
        "{refused}"
    );
    let cancel = Event::Cancel {
        by: "ops".into(),
        reason: "dup".into(),
    };
    assert!(
        engine
            .check_command(
                KIND,
                Stored::new(&first.state, &personal_input()),
                &cancel,
                t0()
            )
            .is_ok()
    );
}

/// The sequence in the crate docs, row by row.
#[test]
fn the_documented_sequence() {
    use finfra_api::model::ekyc::KycSubmissionStatus;
    use workflow::{CallPurpose, SleepReason};

    let engine = Engine::new(registry());
    let first = engine
        .start(
            KIND,
            &WorkflowId::new(WORKFLOW).unwrap(),
            &personal_input(),
            &workflow::Prior::default(),
            at(0),
        )
        .unwrap();
    assert_eq!(
        (first.summary.state.as_str(), first.summary.status),
        ("ekyc_ocr", Status::Running)
    );
    let rows: Vec<(i64, Event, &str, Status, &str)> = vec![
        (
            1,
            ok(ocr(Some(NIK), 0.97)),
            "ekyc_biometric",
            Status::Running,
            "biometric_kyc",
        ),
        (
            2,
            ok(biometric(Liveness::Passed, 0.93)),
            "create_borrower",
            Status::Running,
            "create_borrower_for_kyc",
        ),
        (
            3,
            err(CallFailure::rate_limited(Some(
                std::time::Duration::from_secs(2),
            ))),
            "create_borrower",
            Status::Retrying,
            "sleep",
        ),
        (
            5,
            Event::Wake,
            "create_borrower",
            Status::Running,
            "create_borrower_for_kyc",
        ),
        (
            6,
            err(CallFailure::timeout(true, false)),
            "create_borrower",
            Status::Ambiguous,
            "get_kyc_submission",
        ),
        (
            7,
            ok(submission(KycSubmissionStatus::Draft, None, &[])),
            "create_borrower",
            Status::Running,
            "create_borrower_for_kyc",
        ),
        (
            8,
            err(CallFailure::conflict(
                "A borrower was already created for this KYC session",
            )),
            "submit_kyc",
            Status::Running,
            "submit_kyc",
        ),
        (
            9,
            ok(kyc_submitted()),
            "await_user_created",
            Status::Waiting,
            "wait",
        ),
        (
            12,
            callback(CallbackTitle::UserCreated),
            "hub_check",
            Status::Running,
            "hub_status",
        ),
        (
            13,
            ok(hub(HubProvider::Verihubs, HubCheckStatus::Passed)),
            "rdf_biometric",
            Status::Running,
            "verify_biometric_rdf",
        ),
        (
            14,
            ok(rdf(RdfBiometricStatus::Verified)),
            "await_user_verified",
            Status::Waiting,
            "wait",
        ),
        (
            44,
            Event::Wake,
            "await_user_verified",
            Status::Waiting,
            "get_borrower",
        ),
        (
            45,
            ok(get_borrower(BorrowerStatus::Verified)),
            "credit_score",
            Status::Running,
            "score_report",
        ),
        (
            46,
            ok(score(712, 0, 0)),
            "credit_history",
            Status::Running,
            "credit_history",
        ),
        (
            47,
            ok(history(&[])),
            "approve_borrower",
            Status::Running,
            "approve_borrower",
        ),
        (
            48,
            ok(FinfraResponse::ApproveBorrower(borrower(
                BorrowerStatus::ApprovedByPartner,
            ))),
            "await_user_approved",
            Status::Waiting,
            "wait",
        ),
        (
            51,
            callback(CallbackTitle::UserApproved),
            "approved",
            Status::Completed,
            "complete",
        ),
        (
            52,
            callback(CallbackTitle::UserApproved),
            "approved",
            Status::Completed,
            "complete",
        ),
    ];
    let mut state = first.state;
    let mut keys = Vec::new();
    for (t, event, name, status, action) in rows {
        let d = step(&engine, &state, event, at(t));
        assert_eq!(
            (d.summary.state.as_str(), d.summary.status),
            (name, status),
            "t={t}: {}",
            d.note
        );
        let shown = match &d.action {
            Action::Call {
                request,
                purpose,
                operation_key,
                ..
            } => {
                if request.name() == "create_borrower_for_kyc" {
                    keys.push(operation_key.clone());
                }
                if request.name() == "get_kyc_submission" {
                    assert_eq!(*purpose, CallPurpose::Reconcile);
                }
                request.name()
            }
            Action::SleepUntil {
                at: when, reason, ..
            } => {
                assert_eq!((*when, *reason), (at(5), SleepReason::RateLimited));
                "sleep"
            }
            Action::Wait {
                wake_at, deadline, ..
            } => {
                if name == "await_user_created" {
                    assert_eq!((*wake_at, *deadline), (at(39), at(1809)));
                }
                "wait"
            }
            Action::Complete { .. } => "complete",
            other => panic!("t={t}: {other:?}"),
        };
        assert_eq!(shown, action, "t={t}: {}", d.note);
        if t == 52 {
            assert_eq!(d.handled, Handled::Ignored);
        }
        state = d.state;
    }
    assert_eq!(keys.len(), 3);
    assert!(
        keys.windows(2).all(|w| w[0] == w[1]),
        "one operation key for every attempt"
    );
}

#[test]
#[ignore = "prints a stored state, for reading"]
fn show_a_stored_state() {
    let state = serde_json::to_value(p_await_verified()).unwrap();
    println!("{}", serde_json::to_string_pretty(&state["phase"]).unwrap());
    println!(
        "{}",
        serde_json::to_string_pretty(&state["borrower"]).unwrap()
    );
}

/// The stored context is slim: the definition by pin, no request (no personal data), and a
/// running workflow keeps its pinned definition and its request when the registry moves on.
#[test]
fn the_context_names_its_definition_and_leaves_the_request_in_the_input() {
    let engine = Engine::new(registry());
    let input = personal_input();
    let first = engine
        .start(
            KIND,
            &WorkflowId::new(WORKFLOW).unwrap(),
            &input,
            &workflow::Prior::default(),
            t0(),
        )
        .unwrap();
    let context = &first.state;
    let pin = first.pin.clone().expect("a pinned definition");
    assert_eq!(context["definition"], pin.digest.as_str());
    assert_eq!(pin.digest.len(), 64);
    assert!(context.get("request").is_none(), "{context}");
    let text = context.to_string();
    assert!(!text.contains(NIK), "no NIK in the context: {text}");
    assert!(text.len() < 1_500, "{} bytes: {text}", text.len());
    assert!(workflow::stored::is_slim(context));

    // Another process with no definitions loaded: it must load the pin, then decides alike.
    let bare = Engine::new(workflow::Registry::default());
    let unknown = bare
        .decide(
            KIND,
            Stored::new(context, &input),
            &ok(ocr(Some(NIK), 0.97)),
            t0(),
        )
        .unwrap_err();
    let EngineError::UnknownDefinition { digest } = unknown else {
        panic!("an unknown definition: {unknown}");
    };
    assert_eq!(digest, pin.digest);
    bare.pin_stored(&digest, &pin.json).unwrap();
    let here = engine
        .decide(
            KIND,
            Stored::new(context, &input),
            &ok(ocr(Some(NIK), 0.97)),
            t0(),
        )
        .unwrap();
    let there = bare
        .decide(
            KIND,
            Stored::new(context, &input),
            &ok(ocr(Some(NIK), 0.97)),
            t0(),
        )
        .unwrap();
    assert_eq!(here.state, there.state);
    assert_eq!(here.action, there.action);
    // The executor keeps the rebuilt request for as long as it holds the workflow: the
    // same decisions.
    let kept = workflow::Rebuilt::default();
    let typed = workflow::Typed::default();
    for _ in 0..2 {
        let cached = engine
            .decide(
                KIND,
                Stored::cached(context, &input, &kept, &typed),
                &ok(ocr(Some(NIK), 0.97)),
                t0(),
            )
            .unwrap();
        assert_eq!(cached.state, here.state);
        assert_eq!(cached.action, here.action);
    }
    // And the state a committed decision left, kept in memory for the next decision: the
    // same decision as from the context it was stored as (debug builds also compare the
    // two states at every decision taken from memory). Not confirmed, nothing is kept.
    let next = ok(biometric(Liveness::Passed, 0.93));
    let from_context = engine
        .decide(KIND, Stored::new(&here.state, &input), &next, t0())
        .unwrap();
    typed.confirm();
    let from_memory = engine
        .decide(
            KIND,
            Stored::cached(&here.state, &input, &kept, &typed),
            &next,
            t0(),
        )
        .unwrap();
    assert_eq!(from_memory, from_context);
    assert_eq!(here.action.kind(), ActionKind::Call);

    // The request is the input's: the NIK reaches the call built from it.
    let create = [ok(biometric(Liveness::Passed, 0.93))];
    let mut state = here.state;
    for event in create {
        state = engine
            .decide(KIND, Stored::new(&state, &input), &event, t0())
            .unwrap()
            .state;
    }
    let action = engine.action(KIND, Stored::new(&state, &input)).unwrap();
    let request = serde_json::to_string(action.request().expect("a call")).unwrap();
    assert!(
        request.contains(NIK),
        "the create body carries the NIK: {request}"
    );
}

/// The state an onboarding of `input` starts in, as JSON whole (the definition and the
/// request inline): what an earlier build stored as its context.
fn whole_start_state(input: &Value) -> Value {
    let typed =
        <workflow::OnboardBorrower as workflow::Workflow>::validate_input(input, &registry(), t0())
            .unwrap();
    let transition = <workflow::OnboardBorrower as workflow::Workflow>::start(
        &WorkflowId::new(WORKFLOW).unwrap(),
        typed,
        &workflow::Prior::default(),
        t0(),
    );
    serde_json::to_value(&transition.state).unwrap()
}

/// The slim context is the whole state's JSON, field for field, without the request, with
/// the definition named by its pin and without its objects' `null` members: written
/// without building the rest first.
#[test]
fn the_slim_context_is_the_whole_state_less_what_is_stored_elsewhere() {
    let engine = Engine::new(registry());
    let input = personal_input();
    let id = WorkflowId::new(WORKFLOW).unwrap();
    let slim = engine
        .start(KIND, &id, &input, &workflow::Prior::default(), t0())
        .unwrap();
    let mut expected = whole_start_state(&input);
    let fields = expected.as_object_mut().unwrap();
    assert!(fields.remove("request").is_some());
    let pin = slim.pin.expect("a pin");
    fields.insert("definition".into(), json!(pin.digest));
    let nulls = without_null_members(&mut expected);
    assert!(
        nulls >= 5,
        "the whole state has its unknowns as nulls: {nulls}"
    );
    assert_eq!(slim.state, expected);
    assert_eq!(without_null_members(&mut slim.state.clone()), 0);
}

/// Removes the `null` members of `value`'s objects, at every depth; how many it removed.
fn without_null_members(value: &mut Value) -> usize {
    match value {
        Value::Object(members) => {
            let before = members.len();
            members.retain(|_, member| !member.is_null());
            before - members.len()
                + members
                    .values_mut()
                    .map(without_null_members)
                    .sum::<usize>()
        }
        Value::Array(items) => items.iter_mut().map(without_null_members).sum(),
        _ => 0,
    }
}

/// A context without its `null`s reads as the state it was written from, at every step of
/// an onboarding to its approval (an `Option` field that is missing reads as `None`), and
/// the decisions from it are those from the whole state, `null`s included, as the builds
/// before stored it.
#[test]
fn a_context_without_its_nulls_decides_as_the_whole_state() {
    use workflow::{OnboardBorrower, Workflow};
    let engine = Engine::new(registry());
    let input = personal_input();
    let id = WorkflowId::new(WORKFLOW).unwrap();
    let mut lean = engine
        .start(KIND, &id, &input, &workflow::Prior::default(), t0())
        .unwrap();
    let digest = lean.pin.clone().expect("a pin").digest.clone();
    let typed = OnboardBorrower::validate_input(&input, &registry(), t0()).unwrap();
    let mut state = OnboardBorrower::start(&id, typed, &workflow::Prior::default(), t0()).state;
    let mut nulls = 0;
    let mut now = t0();
    for event in approval_script() {
        // The whole state as an earlier build stored it: its nulls kept.
        let mut whole = serde_json::to_value(&state).unwrap();
        let fields = whole.as_object_mut().unwrap();
        fields.remove("request");
        fields.insert("definition".into(), json!(digest));
        let mut expected = whole.clone();
        nulls += without_null_members(&mut expected);
        assert_eq!(lean.state, expected, "the lean context of the same state");

        let from_whole = engine
            .decide(KIND, Stored::new(&whole, &input), &event, now)
            .unwrap();
        lean = engine
            .decide(KIND, Stored::new(&lean.state, &input), &event, now)
            .unwrap();
        assert_eq!(lean.state, from_whole.state, "after {event:?}");
        assert_eq!(lean.summary, from_whole.summary);
        state = OnboardBorrower::decide(&state, &event, now).state;
        if let Action::SleepUntil { at, .. } = lean.action {
            now = at;
        }
    }
    assert_eq!(lean.summary.status, Status::Completed);
    assert!(nulls >= 20, "the states passed through had nulls: {nulls}");
}

/// A context written by an earlier build (the definition and the request inline) still
/// reads, and its next decision is stored slim, naming a pin the executor must store.
#[test]
fn an_earlier_builds_context_reads_and_is_written_slim() {
    let engine = Engine::new(registry());
    let input = personal_input();
    let old = whole_start_state(&input);
    assert!(old["definition"].is_object() && old["request"].is_object());
    assert!(!workflow::stored::is_slim(&old));
    // Its input is not even read: an earlier build's context is whole.
    let decision = engine
        .decide(
            KIND,
            Stored::new(&old, &json!({})),
            &ok(ocr(Some(NIK), 0.97)),
            t0(),
        )
        .unwrap();
    assert!(
        workflow::stored::is_slim(&decision.state),
        "{}",
        decision.state
    );
    let pin = decision.pin.expect("a pin");
    assert_eq!(decision.state["definition"], pin.digest.as_str());
    assert!(!pin.is_stored(), "the executor stores it before the commit");
    let next = engine
        .decide(
            KIND,
            Stored::new(&decision.state, &input),
            &ok(biometric(Liveness::Passed, 0.93)),
            t0(),
        )
        .unwrap();
    assert_eq!(next.summary.state, "create_borrower");
}

/// An input that no longer reads against its pinned definition is named, not guessed.
#[test]
fn a_request_that_cannot_be_rebuilt_is_an_error() {
    let engine = Engine::new(registry());
    let first = engine
        .start(
            KIND,
            &WorkflowId::new(WORKFLOW).unwrap(),
            &personal_input(),
            &workflow::Prior::default(),
            t0(),
        )
        .unwrap();
    let err = engine
        .decide(
            KIND,
            Stored::new(&first.state, &json!({"definition": "x"})),
            &Event::Wake,
            t0(),
        )
        .unwrap_err();
    assert!(matches!(err, EngineError::Rebuild { .. }), "{err}");
    assert!(err.to_string().contains("borrower"), "{err}");
}
