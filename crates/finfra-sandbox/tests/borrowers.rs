//! Borrower and e-KYC lifecycles (CONTRACT §3, §4) and the magic values.

mod common;

use std::time::Duration;

use common::{Api, eventually, eventually_some, personal, start};
use finfra_sandbox::{SandboxConfig, Timing};
use serde_json::json;

#[tokio::test]
async fn creation_is_asynchronous_and_the_id_arrives_by_callback() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    api.create_personal("3275062009921981", "budi@example.com")
        .await;
    let created = eventually_some(|| async {
        sandbox
            .callbacks()
            .into_iter()
            .find(|c| c.title == "user_created")
    })
    .await;
    assert_eq!(created.path, "/api/core/ftm/users/user_created/status");
    assert_eq!(created.body["status"], "PENDING");
    assert_eq!(created.body["identity_number"], "3275062009921981");
    assert!(
        created.body.get("kyc_id").is_none(),
        "plain path: no kyc_id"
    );
    let id = created.body["user_id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 24);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );

    eventually(|| async {
        api.get(&format!("/api/core/users/{id}")).await.1["status"] == "VERIFIED"
    })
    .await;
    let (status, b) = api.get(&format!("/api/core/users/{id}")).await;
    assert_eq!(status, 200);
    // The reference's quirks: timestamps for dates, a boolean for prenuptial_agreement,
    // stored file ids and `{}` for absent documents.
    assert_eq!(
        b["authorised_signatory"]["birth_date"],
        "1995-11-01T00:00:00.000Z"
    );
    assert_eq!(b["authorised_signatory"]["prenuptial_agreement"], true);
    assert_eq!(b["authorised_signatory"]["documents"]["npwp"], json!({}));
    assert_eq!(
        b["authorised_signatory"]["documents"]["ktp"]["number"],
        "3275062009921981"
    );
    assert_eq!(b["partner_id"], sandbox.config().partner_id.to_string());

    // The same NIK again: 409, counted.
    let (status, _) = api
        .post(
            "/api/core/users",
            personal("3275062009921981", "x@example.com"),
        )
        .await;
    assert_eq!(status, 409);
    let ledger = sandbox.ledger();
    assert_eq!(ledger.borrowers_created_per_nik["3275062009921981"], 1);
    assert_eq!(ledger.borrower_conflicts_per_nik["3275062009921981"], 1);
}

#[tokio::test]
async fn approve_block_and_their_conflicts() {
    let sandbox = start(SandboxConfig {
        timing: Timing {
            kyc_review: Duration::from_secs(60),
            ..Timing::zero()
        },
        ..SandboxConfig::for_tests()
    })
    .await;
    let api = Api::login(&sandbox).await;
    api.create_personal("3275062009921981", "budi@example.com")
        .await;
    let id = eventually_some(|| async { sandbox.borrower_id_by_nik("3275062009921981") }).await;
    let (status, body) = api
        .post_empty(&format!("/api/core/users/{id}/approve"))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["message"], "KYC verification is not complete");

    // PATCH works on a pending borrower, and the merged body is validated.
    let (status, b) = api
        .patch(
            &format!("/api/core/users/{id}"),
            json!({"authorised_signatory": {"address": {"city": "Bogor"}}}),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["authorised_signatory"]["address"]["city"], "Bogor");
    let (status, _) = api
        .patch(
            &format!("/api/core/users/{id}"),
            json!({"authorised_signatory": {"gender": "X"}}),
        )
        .await;
    assert_eq!(status, 400);

    let (status, b) = api
        .post(
            &format!("/api/core/users/{id}/block"),
            json!({"reason": "fraud"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(b["status"], "BLOCKED");
    assert_eq!(
        api.post_empty(&format!("/api/core/users/{id}/approve"))
            .await
            .0,
        409
    );
    assert_eq!(
        api.patch(
            &format!("/api/core/users/{id}"),
            json!({"type": "PERSONAL"})
        )
        .await
        .0,
        409
    );
    let blocked = eventually_some(|| async {
        sandbox
            .callbacks()
            .into_iter()
            .find(|c| c.title == "user_blocked")
    })
    .await;
    assert_eq!(blocked.body["data"]["reason"], "fraud");
}

#[tokio::test]
async fn approval_runs_through_approved_by_partner() {
    let sandbox = start(SandboxConfig {
        timing: Timing {
            final_approval: Duration::from_millis(300),
            ..Timing::zero()
        },
        ..SandboxConfig::for_tests()
    })
    .await;
    let api = Api::login(&sandbox).await;
    let id = api
        .verified_borrower(&sandbox, "3275062009921981", "budi@example.com")
        .await;
    let (status, b) = api
        .post_empty(&format!("/api/core/users/{id}/approve"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(b["status"], "APPROVED_BY_PARTNER");
    // Approving twice is a no-op.
    assert_eq!(
        api.post_empty(&format!("/api/core/users/{id}/approve"))
            .await
            .0,
        200
    );
    eventually(|| async {
        api.get(&format!("/api/core/users/{id}")).await.1["status"] == "APPROVED"
    })
    .await;
    let titles: Vec<_> = sandbox.callbacks().into_iter().map(|c| c.title).collect();
    assert_eq!(titles, ["user_created", "user_verified", "user_approved"]);
}

#[tokio::test]
async fn kyc_path_links_the_session_and_the_submission_reveals_the_id() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;
    let (status, ocr) = api
        .post(
            "/api/core/users/ocr",
            json!({"document_type": "KTP", "file": "scan-3275062009921981.jpg"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ocr["extracted"]["nik"], "3275062009921981");
    assert_eq!(ocr["extracted"]["birth_date"], "1992-09-20");
    let kyc_id = ocr["kyc_id"].as_str().unwrap().to_owned();
    assert_eq!(kyc_id.split('.').count(), 3);

    let (status, bio) = api
        .send(
            api.http
                .post(api.url("/api/core/users/biometric"))
                .bearer_auth(&api.token)
                .header("kyc-id", &kyc_id)
                .json(&json!({"selfie": "selfie.jpg"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (bio["kyc_id"].as_str(), bio["liveness"].as_str()),
        (Some(kyc_id.as_str()), Some("PASSED"))
    );

    let submission = format!("/api/core/kyc/{kyc_id}/submission");
    assert_eq!(api.get(&submission).await.1["status"], "DRAFT");
    // Submitting before a borrower exists on the session: 400.
    assert_eq!(
        api.post_empty(&format!("/api/core/kyc/{kyc_id}/submit"))
            .await
            .0,
        400
    );

    let (status, _) = api
        .post(
            &format!("/api/core/{kyc_id}/users"),
            personal("3275062009921981", "budi@example.com"),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .post_empty(&format!("/api/core/kyc/{kyc_id}/submit"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"kyc_id": kyc_id, "status": "SUBMITTED"}));
    eventually(|| async { api.get(&submission).await.1["status"] == "COMPLETED" }).await;
    let (_, sub) = api.get(&submission).await;
    let id = sub["user_id"].as_str().unwrap();
    assert_eq!(
        Some(id.to_owned()),
        sandbox.borrower_id_by_nik("3275062009921981")
    );
    let created = sandbox
        .callbacks()
        .into_iter()
        .find(|c| c.title == "user_created")
        .unwrap();
    assert_eq!(created.body["kyc_id"], kyc_id);
    // A second borrower on the same session: 409.
    let (status, _) = api
        .post(
            &format!("/api/core/{kyc_id}/users"),
            personal("3275062009921999", "b2@example.com"),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn magic_values_pick_the_outcome() {
    let sandbox = start(SandboxConfig::for_tests()).await;
    let api = Api::login(&sandbox).await;

    // +reject: KYC fails with a reason.
    api.create_personal("3275062009920001", "rina+reject@example.com")
        .await;
    let rejected = eventually_some(|| async {
        sandbox
            .callbacks()
            .into_iter()
            .find(|c| c.title == "user_rejected")
    })
    .await;
    assert_eq!(rejected.body["status"], "REJECTED");
    assert!(
        rejected.body["data"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    let rejected_id = rejected.body["user_id"].as_str().unwrap();
    assert_eq!(
        api.post_empty(&format!("/api/core/users/{rejected_id}/approve"))
            .await
            .0,
        409
    );

    // +lowscore +overdue +hubpending +rdffail.
    let id = api
        .verified_borrower(
            &sandbox,
            "3275062009920002",
            "andi+lowscore+overdue+hubpending+rdffail@example.com",
        )
        .await;
    let (status, score) = api
        .post("/api/core/users/score-report", json!({"user_id": id}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (score["score"].as_u64(), score["grade"].as_str()),
        (Some(420), Some("E"))
    );
    assert_eq!(score["sources"].as_array().unwrap().len(), 2);
    assert_eq!(score["sources"][0]["max_days_past_due"], 95);
    assert!(score["sources"][0]["outstanding_amount"].is_string());
    let cs = eventually_some(|| async {
        sandbox
            .callbacks()
            .into_iter()
            .find(|c| c.title == "credit_score")
    })
    .await;
    assert_eq!(cs.body["data"]["score"], 420);
    assert_eq!(cs.body["identity_number"], "3275062009920002");
    let (_, history) = api
        .get("/api/core/users/3275062009920002/credit-history")
        .await;
    assert!(
        history["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "LATE" && r["days_past_due"] == 95)
    );
    let hub = format!("/api/core/users/{id}/status/VERIHUBS");
    assert_eq!(api.get(&hub).await.1["status"], "PENDING");
    assert_eq!(api.get(&hub).await.1["status"], "PASSED");
    let (_, rdf) = api
        .post_empty(&format!("/api/core/users/{id}/rdf/verify-biometric"))
        .await;
    assert_eq!(rdf["status"], "FAILED");

    // Defaults: a passing score from the NIK, checks pass.
    let id = api
        .verified_borrower(&sandbox, "3275062009920003", "sari@example.com")
        .await;
    let (_, score) = api
        .send(
            api.http
                .post(api.url("/api/core/users/score-report"))
                .bearer_auth(&api.token)
                .header("credit-source", "clik")
                .json(&json!({"user_id": id})),
        )
        .await;
    assert!((600..=900).contains(&score["score"].as_u64().unwrap()));
    assert_eq!(score["sources"].as_array().unwrap().len(), 1);
    assert_eq!(
        api.get(&format!("/api/core/users/{id}/status/ASLIRI"))
            .await
            .1["status"],
        "PASSED"
    );
    let (_, clik) = api
        .post("/api/core/users/clik/credit-report", json!({"user_id": id}))
        .await;
    assert_eq!(clik["report_type"], "INDIVIDUAL");

    // Biometric liveness.
    let (_, bio) = api
        .post(
            "/api/core/users/biometric",
            json!({"selfie": "a spoof attempt"}),
        )
        .await;
    assert_eq!(bio["liveness"], "FAILED");
}
