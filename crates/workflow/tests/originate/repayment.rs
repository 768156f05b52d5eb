//! Repayments: applied once per payment id, in installment order (partial, then paid);
//! overpayments recorded; overdue installments flagged by durable timers and cured by
//! payments; lost payment callbacks caught by the loan read; completion on `PAID`.

use chrono::{DateTime, TimeZone, Utc};
use finfra_api::callback::CallbackTitle;
use serde_json::json;
use workflow::ActionKind::{Call, Complete, NeedsAttention, Wait};
use workflow::originate::OriginateState;
use workflow::{Action, CallPurpose, CallbackEvent, Event, OriginateLoan, Workflow};

use crate::fixtures::*;
use crate::table::{Row, row, run};

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().unwrap()
}

/// The BNPL loan (3 installments of 1 052 500), repaying.
pub fn b_repaying() -> OriginateState {
    drive(
        &b_await_signed(),
        &[
            cb(CallbackTitle::BnplSigned),
            ok(disbursing("DISB-9")),
            cb(CallbackTitle::BnplDisbursed),
            ok(virtual_account()),
        ],
    )
}

/// The BNPL loan as Finfra shows it with `paid` on each installment.
fn bnpl_read(status: &str, paid: [&str; 3]) -> Event {
    let mut v = loan_json(true, status);
    v["disbursement"] = json!({"status": "DISBURSED", "reference": "DISB-9"});
    for (i, p) in paid.iter().enumerate() {
        v["schedule"][i]["paid_amount"] = json!(p);
    }
    ok(get_loan(to_loan(v)))
}

/// Installment 1 is due 2026-02-05; with 3 days of grace it is overdue from the end of
/// 2026-02-08 in WIB: 17:00 UTC.
fn first_overdue() -> DateTime<Utc> {
    utc(2026, 2, 8, 17)
}

fn b_overdue() -> OriginateState {
    drive_at(&b_repaying(), Event::Wake, first_overdue())
}

fn paid(t: &crate::table::T) -> String {
    OriginateLoan::summary(&t.state).facts["amount_paid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub fn rows() -> Vec<Row> {
    vec![
        row(
            "a partial payment fills installment 1 partly",
            b_repaying(),
            payment("p1", "500000.00"),
            "repaying",
            Wait,
        )
        .check(|t| {
            assert_eq!(
                t.state.loan.allocation(),
                [(1, d("500000.00")), (2, d("0")), (3, d("0"))]
            );
            assert_eq!(t.state.loan.outstanding(), Some(d("2657500.00")));
        }),
        row(
            "the next payment completes 1 and starts 2",
            drive(&b_repaying(), &[payment("p1", "500000.00")]),
            payment("p2", "1200000.00"),
            "repaying",
            Wait,
        )
        .check(|t| {
            assert_eq!(
                t.state.loan.allocation(),
                [(1, d("1052500.00")), (2, d("647500.00")), (3, d("0"))]
            );
            assert_eq!(paid(t), "1700000.00");
        }),
        row(
            "the same payment id again: applied once",
            drive(&b_repaying(), &[payment("p1", "500000.00")]),
            payment("p1", "500000.00"),
            "repaying",
            Wait,
        )
        .ignored(),
        row(
            "a payment into another account: not ours",
            b_repaying(),
            {
                let Event::Callback(CallbackEvent::VirtualAccountPayment(mut p)) =
                    payment("p9", "1.00")
                else {
                    unreachable!()
                };
                p.external_id = "va-other".into();
                Event::Callback(CallbackEvent::VirtualAccountPayment(p))
            },
            "repaying",
            Wait,
        )
        .ignored(),
        row(
            "an overpayment is recorded, and PAID confirmed at once",
            b_repaying(),
            payment("p1", "3200000.00"),
            "repaying",
            Wait,
        )
        .check(|t| {
            assert_eq!(t.state.loan.overpaid(), d("42500.00"));
            assert_eq!(
                OriginateLoan::summary(&t.state).facts["amount_overpaid"],
                "42500.00"
            );
            assert!(
                matches!(&t.action, Action::Wait { wake_at, .. } if *wake_at == crate::common::t0())
            );
        }),
        // Overdue, by timer.
        row(
            "a minute before the grace ends: nothing overdue",
            b_repaying(),
            Event::Wake,
            "repaying",
            Call,
        )
        .at(first_overdue() - chrono::TimeDelta::minutes(1))
        .purpose(CallPurpose::Poll)
        .check(|t| assert!(t.state.loan.overdue_now().is_empty())),
        row(
            "the grace ends: installment 1 overdue, keep waiting",
            b_repaying(),
            Event::Wake,
            "repaying",
            Call,
        )
        .at(first_overdue())
        .check(|t| {
            assert_eq!(t.state.loan.overdue_now(), [1]);
            assert_eq!(
                t.state.loan.repayment.overdue[0].outstanding,
                d("1052500.00")
            );
            let workflow::originate::Phase::Repaying { next_check, .. } = &t.state.phase else {
                panic!()
            };
            assert_eq!(
                *next_check,
                Some(utc(2026, 3, 8, 17)),
                "the next installment's turn"
            );
            assert_eq!(
                OriginateLoan::summary(&t.state).facts["overdue_installments"],
                json!([1])
            );
        }),
        row(
            "a payment cures the overdue installment",
            b_overdue(),
            payment("p1", "1052500.00"),
            "repaying",
            Call,
        )
        .check(|t| {
            assert!(t.state.loan.overdue_now().is_empty());
            assert!(t.state.loan.repayment.overdue[0].cured_at.is_some());
            assert_eq!(
                OriginateLoan::summary(&t.state).facts["ever_overdue_installments"],
                json!([1])
            );
        }),
        row(
            "a partly paid installment still becomes overdue",
            drive(&b_repaying(), &[payment("p1", "1000000.00")]),
            Event::Wake,
            "repaying",
            Call,
        )
        .at(first_overdue())
        .check(|t| assert_eq!(t.state.loan.repayment.overdue[0].outstanding, d("52500.00"))),
        // The loan read.
        row(
            "the read shows a payment whose callback was lost",
            drive_at(&b_repaying(), Event::Wake, after_days(1)),
            bnpl_read("DISBURSED", ["1052500.00", "0.00", "0.00"]),
            "repaying",
            Wait,
        )
        .check(|t| assert_eq!(t.state.loan.paid(), d("1052500.00"))),
        row(
            "the lost payment's callback arrives late: not counted twice",
            drive(
                &drive_at(&b_repaying(), Event::Wake, after_days(1)),
                &[bnpl_read("DISBURSED", ["1052500.00", "0.00", "0.00"])],
            ),
            payment("p1", "1052500.00"),
            "repaying",
            Wait,
        )
        .check(|t| assert_eq!(t.state.loan.paid(), d("1052500.00"))),
        row(
            "the read shows PAID before the payments: wait for them",
            drive_at(&b_repaying(), Event::Wake, after_days(1)),
            bnpl_read("PAID", ["1052500.00", "1052500.00", "1052500.00"]),
            "repaying",
            Wait,
        )
        .at(after_days(1)),
        row(
            "PAID and the payments never came: complete after the grace",
            drive_at(
                &drive_at(&b_repaying(), Event::Wake, after_days(1)),
                bnpl_read("PAID", ["1052500.00", "1052500.00", "1052500.00"]),
                after_days(1),
            ),
            Event::Wake,
            "paid",
            Complete,
        )
        .at(after_days(1) + workflow::originate::SETTLEMENT_GRACE)
        .check(|t| assert_eq!(t.state.loan.paid(), d("3157500.00"))),
        row(
            "bnpl_paid after every payment: complete",
            drive(
                &b_repaying(),
                &[
                    payment("pay-1", "1052500.00"),
                    payment("pay-2", "1052500.00"),
                    payment("pay-3", "1052500.00"),
                ],
            ),
            cb(CallbackTitle::BnplPaid),
            "paid",
            Complete,
        ),
        row(
            "unpaid long after the last installment: a person looks",
            b_repaying(),
            Event::Wake,
            "needs_attention",
            NeedsAttention,
        )
        .at(utc(2026, 4, 8, 17) + chrono::TimeDelta::days(90))
        .check(|t| assert_eq!(reason_code(t), "repayment_overdue")),
        row(
            "resolve: wait again with a read at once",
            drive_at(
                &b_repaying(),
                Event::Wake,
                utc(2026, 4, 8, 17) + chrono::TimeDelta::days(90),
            ),
            resolve(json!({})),
            "repaying",
            Wait,
        )
        .at(utc(2026, 8, 1, 0)),
    ]
}

#[test]
fn repayment_branches() {
    run(&rows());
}

#[test]
fn each_installment_is_flagged_once_in_turn() {
    let mut state = b_repaying();
    let mut flagged = Vec::new();
    for (m, d) in [(2, 8), (3, 8), (4, 8)] {
        let t = decide(&state, &Event::Wake, utc(2026, m, d, 17));
        flagged.push(t.state.loan.overdue_now());
        // The poll is answered with nothing new.
        state = decide(
            &t.state,
            &bnpl_read("DISBURSED", ["0.00", "0.00", "0.00"]),
            utc(2026, m, d, 17),
        )
        .state;
        // A repeated wake-up flags nothing again.
        let again = decide(&state, &Event::Wake, utc(2026, m, d, 17));
        assert_eq!(
            again.state.loan.repayment.overdue.len(),
            flagged.last().unwrap().len()
        );
    }
    assert_eq!(flagged, [vec![1], vec![1, 2], vec![1, 2, 3]]);
}
