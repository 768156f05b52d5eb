//! Logs never carry personal data or secrets, even at `trace`: a real `finflow run` worker
//! (JSON logs, `FINFLOW_LOG=trace`, every crate) onboards a PERSONAL borrower (e-KYC) and a
//! BUSINESS one (document uploads to presigned URLs) through the sandbox, and neither its
//! log nor `finflow submit`'s contains the borrowers' NIKs, names, phone numbers, emails,
//! birth date, address, the client secret, the callback auth key, an access token or a
//! presigned URL. The JSON lines are JSON and carry the workflow's id, kind and business key.
//! The journal's summaries of its calls show none of it either, and name each call once (the
//! row's `action`), not again with its method and path.
//! A database URL's password stays out of the logs too.

mod ops;

use std::time::Duration;

use serde_json::Value;

/// The personal data of a sample input: every value a log must not show.
fn personal_data(input: &Value) -> Vec<String> {
    let borrower = &input["borrower"];
    let signatory = &borrower["authorised_signatory"];
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let first = text(&signatory["first_name"]).expect("first name");
    let last = text(&signatory["last_name"]).expect("last name");
    let mut values = vec![
        format!("{first} {last}"),
        last,
        text(&signatory["documents"]["ktp"]["number"]).expect("NIK"),
        text(&signatory["email"]).expect("email"),
        text(&signatory["mobile_number"]).expect("phone"),
        text(&signatory["birth_date"]).expect("birth date"),
        text(&signatory["address"]["street_address"]).expect("address"),
    ];
    values.extend(
        [
            &signatory["spouse_identification_number"],
            &signatory["emergency_contact_number"],
            &signatory["emergency_contact_name"],
            &borrower["entity"]["name"],
            &borrower["entity"]["email"],
            &borrower["entity"]["phone_number"],
            &borrower["entity"]["npwp"],
        ]
        .into_iter()
        .filter_map(text),
    );
    for management in borrower["entity"]["managements"]
        .as_array()
        .into_iter()
        .flatten()
    {
        values.extend(
            ["name", "email_address", "mobile_number", "identity_number"]
                .into_iter()
                .filter_map(|field| text(&management[field])),
        );
    }
    // A phone number may be logged without its country prefix.
    let phones: Vec<String> = values
        .iter()
        .filter_map(|v| v.strip_prefix("+62").map(str::to_owned))
        .collect();
    values.extend(phones);
    values
}

fn assert_absent(log: &str, what: &str, values: &[String]) {
    for value in values {
        assert!(
            !log.contains(value.as_str()),
            "{what} contains {value:?}:\n{}",
            log.lines()
                .filter(|l| l.contains(value.as_str()))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_onboarding_logged_at_trace_shows_no_personal_data_or_secrets() {
    let setup = ops::Setup::start("logs-pii").await;
    let mut worker = setup.start_worker("trace");

    let personal = ops::sample_input("onboard-personal.json");
    let business = ops::sample_input("onboard-business.json");
    let (personal_id, personal_log) = setup.submit("trace", "pii-personal", &personal);
    let (business_id, business_log) = setup.submit("trace", "pii-business", &business);
    setup
        .wait_terminal(&[personal_id, business_id], Duration::from_secs(20))
        .await;
    let store = setup.store().await;
    for id in [personal_id, business_id] {
        let workflow = store.get(id).await.expect("read").expect("exists");
        assert_eq!(
            workflow.status,
            store::Status::Completed,
            "{id}: {:?}",
            workflow.last_error
        );
    }
    let journals = [
        store.journal(personal_id).await.expect("journal"),
        store.journal(business_id).await.expect("journal"),
    ];
    store.close().await;
    worker.stop();
    let log = worker.log();

    let mut forbidden = personal_data(&personal);
    forbidden.extend(personal_data(&business));
    forbidden.extend([
        setup.client_secret.clone(),
        setup.auth_key.clone(),
        // The sandbox's access tokens (and its KYC session ids) are JWT-shaped: base64url
        // of `{"...`.
        "eyJ".to_owned(),
        // Presigned upload URLs carry a token in their query.
        "/_storage/".to_owned(),
        "token=".to_owned(),
    ]);
    assert!(
        log.lines().count() > 100,
        "trace logs something: {}",
        log.lines().count()
    );
    assert_absent(&log, "the worker's log", &forbidden);
    assert_absent(&personal_log, "finflow submit's output", &forbidden);
    assert_absent(&business_log, "finflow submit's output", &forbidden);

    // The journal's summaries of the calls carry masked arguments, and the call once: its
    // name is the row's `action`, which gives its method and path; no row repeats them.
    let mut calls = 0;
    for row in journals.iter().flatten() {
        let entry = &row.entry;
        let shown = serde_json::to_string(&(&entry.request_summary, &entry.response_summary))
            .expect("JSON");
        assert_absent(&shown, "the journal's summaries", &forbidden);
        let Some(request) = entry
            .request_summary
            .as_ref()
            .filter(|r| r.get("purpose").is_some())
        else {
            continue;
        };
        calls += 1;
        let keys: Vec<&str> = request
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["args", "purpose"], "{}: {request}", entry.action);
        assert!(
            !shown.contains("/api/") && !shown.contains("\"call\":"),
            "{}: the endpoint repeated in {shown}",
            entry.action
        );
        if entry.outcome == store::Outcome::Ok {
            let response = entry
                .response_summary
                .as_ref()
                .expect("an answer's summary");
            assert!(
                response.get("response").is_some() && response.get("decision").is_some(),
                "{}: {response}",
                entry.action
            );
        }
    }
    assert!(calls >= 10, "both onboardings' calls journaled: {calls}");
    assert!(
        journals
            .iter()
            .flatten()
            .any(|row| row.entry.action == "create_borrower_for_kyc"
                && row.entry.request_summary.as_ref().expect("summary")["args"]["nik"]
                    .as_str()
                    .is_some_and(|nik| nik.starts_with("****"))),
        "a create's NIK is journaled masked"
    );

    // Every line is one JSON object; the executor's lines carry the workflow's id, kind and
    // business key in their spans.
    let mut seen = Vec::new();
    for line in log.lines() {
        // The command's own messages to a person (`finflow: shutting down ...`) stay plain.
        if line.starts_with("finflow: ") {
            continue;
        }
        let json: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            json["timestamp"].is_string() && json["level"].is_string(),
            "{line}"
        );
        for span in json["spans"].as_array().into_iter().flatten() {
            if let Some(id) = span["workflow.id"].as_str() {
                seen.push((
                    id.to_owned(),
                    span["workflow.kind"].as_str().map(str::to_owned),
                    span["workflow.business_key"].as_str().map(str::to_owned),
                ));
            }
        }
    }
    for (id, key) in [(personal_id, "pii-personal"), (business_id, "pii-business")] {
        assert!(
            seen.iter().any(|(i, kind, k)| *i == id.to_string()
                && kind.as_deref() == Some("onboard-borrower")
                && k.as_deref() == Some(key)),
            "no log line carries workflow {id} with its kind and business key"
        );
    }
    // Finfra calls are logged inside the step that made them.
    assert!(
        log.lines().any(|l| l.contains("\"name\":\"step\"")
            && l.contains("\"step\":")
            && l.contains("finfra.request")),
        "no Finfra call logged inside its step span"
    );
}

#[test]
fn a_database_password_stays_out_of_the_logs() {
    // Nothing listens on port 9: the worker tries again for `worker.database_wait_secs`
    // (two seconds here instead of a minute: three attempts, each logged), then gives up.
    let password = "pw-that-must-not-leak";
    let dir = std::env::temp_dir();
    let mut command = std::process::Command::new(ops::FINFLOW);
    for (key, _) in std::env::vars() {
        if key.starts_with("FINFLOW_") {
            command.env_remove(key);
        }
    }
    let output = command
        .current_dir(&dir)
        .args(["--log-format", "json", "run"])
        .envs([
            (
                "FINFLOW_DATABASE_URL",
                format!("postgres://finflow:{password}@127.0.0.1:9/finflow"),
            ),
            ("FINFLOW_FINFRA__BASE_URL", "http://127.0.0.1:9".to_owned()),
            ("FINFLOW_FINFRA__CLIENT_ID", "id".to_owned()),
            ("FINFLOW_FINFRA__CLIENT_SECRET", "secret".to_owned()),
            ("FINFLOW_CALLBACKS__AUTH_KEY", "key".to_owned()),
            ("FINFLOW_METRICS__LISTEN", "off".to_owned()),
            (
                "FINFLOW_WORKER__WORKFLOWS_DIR",
                ops::repo().join("workflows").display().to_string(),
            ),
            ("FINFLOW_WORKER__DATABASE_WAIT_SECS", "2".to_owned()),
            ("FINFLOW_LOG", "trace".to_owned()),
        ])
        .envs(ops::PRIVACY_ENV)
        .output()
        .expect("run finflow");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("trying again"),
        "the attempts are logged: {text}"
    );
    assert!(text.contains("finflow:***@127.0.0.1:9"), "{text}");
    assert!(!text.contains(password), "{text}");
}
