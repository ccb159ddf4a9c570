//! The upload path: validation by content, idempotent re-submission, deletion by the uploader,
//! views in the audit trail, pages that work without JavaScript, health and metrics.

use mole_storage::EventKind;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_named_like_a_photo_is_refused_with_a_clear_message() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let response = upload(
        &client,
        &app,
        "mole.jpg",
        b"not a photo at all".to_vec(),
        None,
        false,
    )
    .await;
    assert_eq!(response.status(), 415);
    let html = response.text().await.unwrap();
    assert!(html.contains("not an image"), "{html}");
    assert!(html.contains("<form"), "the form is shown again");

    let response = upload(
        &client,
        &app,
        "mole.jpg",
        b"not a photo".to_vec(),
        None,
        true,
    )
    .await;
    assert_eq!(response.status(), 415);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_an_image");
    assert_eq!(
        env.store
            .status_counts()
            .await
            .unwrap()
            .counts
            .iter()
            .map(|c| c.1)
            .sum::<i64>(),
        0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_size_limit_is_refused_with_413() {
    let env = TestEnv::new().await;
    let mut args = env.serve_args();
    args.upload_limit = 20 * 1024;
    let app = App::spawn_with(args).await;
    let big = vec![0xFFu8; 64 * 1024];
    let response = upload(&http(), &app, "big.jpg", big, None, true).await;
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "file_too_large");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_the_same_photo_twice_gives_the_same_case() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    // The form page hands out the uploader cookie before the first upload.
    let form = client.get(app.url("/")).send().await.unwrap();
    let cookie = cookie_of(&form).expect("the form sets the uploader cookie");
    let bytes = read(&fixture_images()[0]);
    let first = upload(&client, &app, "a.jpg", bytes.clone(), Some(&cookie), false).await;
    let second = upload(&client, &app, "a.jpg", bytes.clone(), Some(&cookie), false).await;
    assert_eq!(first.status(), 303);
    assert_eq!(second.status(), 303);
    assert_eq!(first.headers()["location"], second.headers()["location"]);
    // Someone else sending the same photo gets their own case.
    let other = upload(&client, &app, "a.jpg", bytes, None, false).await;
    assert_ne!(other.headers()["location"], first.headers()["location"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_uploader_can_delete_a_case_and_its_photo_and_the_trail_says_who_did_what() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let form = client.get(app.url("/")).send().await.unwrap();
    let cookie = cookie_of(&form).unwrap();
    let response = upload(
        &client,
        &app,
        "a.jpg",
        read(&fixture_images()[0]),
        Some(&cookie),
        false,
    )
    .await;
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let id: uuid::Uuid = location.trim_start_matches("/cases/").parse().unwrap();

    // A visitor with the link sees the page but no delete button, and cannot delete.
    let page = client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("id=\"delete\""));
    let refused = client
        .post(app.url(&format!("{location}/delete")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // The uploader sees the photo and the button (and the page refreshes itself without JS).
    let page = client
        .get(app.url(&location))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"delete\""));
    assert!(page.contains("<noscript><meta http-equiv=\"refresh\""));
    let photo = client
        .get(app.url(&format!("{location}/image")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.headers()["content-type"], "image/png");

    let deleted = client
        .post(app.url(&format!("{location}/delete")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    assert_eq!(
        client
            .get(app.url(&location))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert_eq!(
        client
            .get(app.url(&format!("{location}/image")))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert!(
        env.store.image(id).await.unwrap().is_none(),
        "the photo is gone"
    );
    assert_eq!(case_json(&client, &app, id).await["status"], "deleted");

    let events = env.store.events(id).await.unwrap();
    let views: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::Viewed)
        .map(|e| e.actor.as_str())
        .collect();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0], "visitor");
    assert!(views[1].starts_with("uploader:"));
    let deletion = events
        .iter()
        .find(|e| e.kind == EventKind::Deleted)
        .unwrap();
    assert_eq!(deletion.actor, views[1]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_and_health_reports_workers() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let health: serde_json::Value = client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["database"]["ok"], true);
    assert_eq!(health["redis"]["ok"], true);
    assert_eq!(health["status"], "degraded", "no worker yet: {health}");

    let worker = InProcessWorker::spawn(env.worker_args());
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let health: serde_json::Value = client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["status"] == "ok" {
            let report = &health["workers"]["reports"][0];
            assert_eq!(report["forward_pass_ok"], true);
            assert!(report["forward_pass_ms"].as_f64().unwrap() > 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker reported: {health}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let metrics = client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mole_cases{status=\"queued\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("mole_queue_depth"), "{metrics}");
    worker.stop().await.unwrap();
    app.stop().await;
}
