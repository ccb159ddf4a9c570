//! Upload → PostgreSQL → Redis → a separate `mole worker` process → result, with the shipped model.

use mole_inference::{Classifier, ClassifierConfig};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_uploaded_lesion_photo_is_analysed_by_a_separate_worker_process_with_the_shipped_model()
{
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let worker = WorkerProcess::spawn(&env, &[]);
    let client = http();

    let image = fixture_images().remove(0);
    let bytes = read(&image);
    // The browser path: a form POST answered with 303 to the case page.
    let response = upload(&client, &app, "lesion.jpg", bytes.clone(), None, false).await;
    let id = redirected_case(&response);
    let location = format!("/cases/{id}");

    let view = wait_final(&client, &app, id).await;
    assert_eq!(view["status"], "done", "{view}");
    let result = &view["result"];

    // The service's answer is the model's answer for this photo: same probabilities as running
    // the classifier directly on the uploaded bytes (the stored photo keeps the pixels exactly).
    let classifier = Classifier::load(&model_path(), ClassifierConfig::default()).unwrap();
    let expected = &classifier
        .predict(&[classifier.preprocess(&bytes).unwrap()])
        .unwrap()[0];
    assert_eq!(result["model_version"], expected.model_version);
    assert_eq!(result["verdict"], expected.verdict.as_str());
    // The rule the verdict was decided by stays with the case.
    let threshold = result["threshold"].as_f64().unwrap();
    assert!((threshold - f64::from(classifier.card().threshold)).abs() < 1e-6);
    let diagnoses = result["diagnoses"].as_array().unwrap();
    assert_eq!(diagnoses.len(), 7);
    for (i, class) in classifier.card().classes.iter().enumerate() {
        let shown = diagnoses
            .iter()
            .find(|d| d["code"] == class.code.as_str())
            .unwrap_or_else(|| panic!("{} missing", class.code));
        let p = shown["probability"].as_f64().unwrap();
        assert!(
            (p - f64::from(expected.probabilities[i])).abs() < 1e-4,
            "{}: service {p}, model {}",
            class.code,
            expected.probabilities[i]
        );
    }
    assert!(result["queue_ms"].as_i64().unwrap() >= 0);
    assert!(result["inference_ms"].as_i64().unwrap() >= 0);

    // The page says it in words, with the notice.
    let page = client.get(app.url(&location)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(expected.verdict.plain_words()),
        "verdict missing"
    );
    assert!(html.contains("not a medical diagnosis"));

    // The audit trail tells the story in order, with actors.
    let events = env.store.events(id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    // The occlusion map (`explained`) is drawn after the verdict, whenever the worker is idle:
    // before or after the page view.
    let story: Vec<&str> = kinds
        .iter()
        .copied()
        .filter(|k| *k != "explained")
        .collect();
    assert_eq!(
        &story[..5],
        ["created", "queued", "started", "completed", "viewed"],
        "{kinds:?}"
    );
    if let Some(at) = kinds.iter().position(|k| *k == "explained") {
        assert!(at > 3, "the map came before the verdict: {kinds:?}");
    }
    assert!(events[0].actor.starts_with("uploader:"));
    assert!(
        events[2].actor.starts_with("worker:test-")
            || events[2].actor.starts_with("worker:worker-")
    );
    assert_eq!(events[3].actor, events[2].actor);
    // The request id of the upload follows the case into the job.
    let upload_request = events[0].request_id.clone().unwrap();
    assert_eq!(
        events[2].request_id.as_deref(),
        Some(upload_request.as_str())
    );

    assert!(worker.terminate(), "the worker stops cleanly on SIGTERM");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_text_logs_have_no_colour_codes_and_a_second_migrate_is_quiet() {
    let env = TestEnv::new().await;
    let database_url = env
        .serve_env(0)
        .into_iter()
        .find(|(k, _)| *k == "DATABASE_URL")
        .unwrap()
        .1;
    for _ in 0..2 {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_mole"))
            .arg("migrate")
            .env_remove("RUST_LOG")
            .env("DATABASE_URL", &database_url)
            .env("MOLE_LOG_FORMAT", "text")
            .output()
            .unwrap();
        let logs = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{logs}");
        assert!(logs.contains("database is up to date"), "{logs}");
        assert!(
            !logs.contains('\u{1b}'),
            "colour codes in piped logs: {logs:?}"
        );
        assert!(!logs.contains("already exists"), "a notice at info: {logs}");
    }
}
