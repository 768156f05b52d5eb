//! Key rotation, end to end: an onboarding started under one key-encryption key is
//! rewrapped by `rotate` and then runs to completion on workers that hold only the new key;
//! its input and callbacks stay sealed throughout. An input stored plain is sealed as its
//! workflow starts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use finfra_api::auth::Credentials;
use finfra_api::callback::AuthKeyVerifier;
use finfra_api::{ClientConfig, FinfraClient};
use finfra_sandbox::{CallbackTarget, Sandbox, SandboxConfig};
use privacy::{KeyRing, PrivacyConfig};
use secrecy::SecretString;
use store::{NewWorkflow, Status, Store};
use worker::executor::Executor;
use workflow::{Engine, Registry};

const KEY: &str = "privacy-key";

fn ring(labels: &[(&str, u8)], active: &str) -> Arc<KeyRing> {
    let b64 = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    Arc::new(
        KeyRing::from_config(&PrivacyConfig {
            keys: labels
                .iter()
                .map(|(label, byte)| ((*label).to_owned(), SecretString::from(b64(*byte))))
                .collect(),
            active: Some(active.to_owned()),
            hash_key: Some(SecretString::from(b64(7))),
            retain: None,
        })
        .expect("keys"),
    )
}

#[tokio::test]
async fn after_rotate_an_old_workflow_runs_to_completion_under_the_new_key() {
    let path = std::env::temp_dir().join(format!("finflow-privacy-{}.db", uuid::Uuid::new_v4()));
    let plain = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("store");
    plain.migrate().await.expect("migrate");
    let old = plain.clone().with_keys(ring(&[("old", 1)], "old"));
    let both = plain
        .clone()
        .with_keys(ring(&[("old", 1), ("new", 2)], "new"));
    let new_only = plain.clone().with_keys(ring(&[("new", 2)], "new"));

    // The fleet after the new key was deployed (both keys, the new one active) receives the
    // callbacks.
    let verifier = AuthKeyVerifier::new(&SecretString::from(KEY)).expect("verifier");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = format!("http://{}/", listener.local_addr().expect("addr"));
    let app = worker::receiver::router(both.clone(), verifier);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = SandboxConfig::for_tests();
    config.callback = Some(CallbackTarget {
        base_url: receiver.parse().expect("url"),
        auth_key: KEY.to_owned(),
    });
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let client = FinfraClient::new(ClientConfig::new(
        sandbox.base_url(),
        Credentials::new(sandbox.client_id(), sandbox.client_secret()),
    ))
    .expect("client");
    let workflows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let engine = Engine::new(Registry::load_dir(&workflows).expect("definitions"));
    let input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../workflows/inputs/onboard-business.json"),
        )
        .expect("input"),
    )
    .expect("json");
    let nik = input["borrower"]["authorised_signatory"]["documents"]["ktp"]["number"]
        .as_str()
        .expect("nik")
        .to_owned();

    // Submitted and started under the old key.
    let id = old
        .submit(&NewWorkflow::new(
            "onboard-borrower",
            "rotated-1",
            input.clone(),
        ))
        .await
        .expect("submit")
        .id;
    let executor = |store: &Store, name: &str| {
        Executor::new(
            store.clone(),
            client.clone(),
            engine.clone(),
            name,
            Duration::from_secs(10),
            "finfra:test",
        )
    };
    executor(&old, "old-worker")
        .advance(id)
        .await
        .expect("advance");
    let row = old.get(id).await.unwrap().unwrap();
    assert!(
        row.data_key
            .as_deref()
            .is_some_and(|k| k.starts_with("old:"))
    );
    assert_ne!(row.state, store::INITIAL_STATE, "started under the old key");

    // An input stored plain (as SQL's `finflow_submit`, which cannot seal, or a row written
    // before keys were configured) is sealed, and its identity keyed, as it starts.
    let personal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workflows.join("inputs/onboard-personal.json")).expect("input"),
    )
    .expect("json");
    let personal_nik = personal["borrower"]["authorised_signatory"]["documents"]["ktp"]["number"]
        .as_str()
        .expect("nik")
        .to_owned();
    let submitted_plain = plain
        .submit(&NewWorkflow::new("onboard-borrower", "plain-1", personal))
        .await
        .expect("submit")
        .id;
    assert!(
        plain
            .get(submitted_plain)
            .await
            .unwrap()
            .unwrap()
            .data_key
            .is_none()
    );
    executor(&old, "old-worker")
        .advance(submitted_plain)
        .await
        .expect("advance");
    let started = old.get(submitted_plain).await.unwrap().unwrap();
    assert!(privacy::is_sealed(&started.input), "{}", started.input);
    assert!(
        started
            .data_key
            .as_deref()
            .is_some_and(|k| k.starts_with("old:"))
    );
    assert_ne!(started.state, store::INITIAL_STATE, "it started");
    let identity: Option<String> =
        sqlx::query_scalar("SELECT identity_key FROM workflows WHERE id = $1")
            .bind(submitted_plain.to_string())
            .fetch_one(plain.sqlite_pool().expect("sqlite"))
            .await
            .expect("identity key");
    assert!(
        identity.is_some_and(|k| k.starts_with("h1:")),
        "keyed, not SHA-256 of the NIK"
    );

    // Rotate: the data keys (of both workflows) are rewrapped, the sealed input untouched.
    let sealed_before = row.input.clone();
    assert_eq!(both.rotate_keys(100).await.expect("rotate"), 2);
    let row = new_only.get(id).await.unwrap().unwrap();
    assert!(
        row.data_key
            .as_deref()
            .is_some_and(|k| k.starts_with("new:"))
    );
    assert_eq!(row.input, sealed_before, "the data itself is not rewritten");
    assert!(
        old.input(&row).is_err(),
        "the old key alone no longer opens it"
    );

    // Workers with only the new key finish it.
    let live = executor(&new_only, "new-worker");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        live.advance(id).await.expect("advance");
        let row = new_only.get(id).await.unwrap().unwrap();
        if row.status.is_terminal() {
            assert_eq!(row.status, Status::Completed, "{:?}", row.last_error);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stuck in {} / {:?}",
            row.state,
            row.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing of the borrower's is stored plain.
    let pool = plain.sqlite_pool().expect("sqlite");
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT input || context FROM workflows UNION ALL SELECT payload || coalesce(identity_number, '') FROM callback_inbox",
    )
    .fetch_all(pool)
    .await
    .expect("scan");
    for text in &texts {
        assert!(!text.contains(&nik), "the NIK is stored plain: {text}");
        assert!(
            !text.contains(&personal_nik),
            "the NIK is stored plain: {text}"
        );
    }
    drop(sandbox);
    let _ = std::fs::remove_file(&path);
}
