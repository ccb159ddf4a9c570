//! Photos the model cannot judge end `refused`, with a reason and advice and no diagnosis; judged
//! photos get their occlusion map after the verdict. Real PostgreSQL, Redis and worker.

use serde_json::Value;

use crate::common::*;

fn refusal_fixture(file: &str) -> Vec<u8> {
    read(&root().join("tests/fixtures/refusal").join(file))
}

/// The kinds of the case's audit events, in order.
async fn event_kinds(env: &TestEnv, id: uuid::Uuid) -> Vec<String> {
    env.store
        .events(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect()
}

/// Deletes the case as its uploader, through the API; then reads what is left of it.
async fn delete_as_uploader(
    env: &TestEnv,
    client: &reqwest::Client,
    app: &App,
    id: uuid::Uuid,
    cookie: &str,
) -> mole_storage::CaseState {
    let deleted = client
        .delete(app.url(&format!("/api/cases/{id}")))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    env.store.case_state(id).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_picture_that_is_not_a_lesion_is_refused_with_a_reason_advice_and_no_diagnosis() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let worker = InProcessWorker::spawn(env.worker_args());
    let client = http();

    let response = upload(
        &client,
        &app,
        "noise.jpg",
        refusal_fixture("synthetic/noise-uniform-0.jpg"),
        None,
        false,
    )
    .await;
    assert_eq!(response.status(), 303);
    let cookie = cookie_of(&response).expect("the uploader's cookie");
    let id = redirected_case(&response);
    let location = format!("/cases/{id}");

    let view = wait_final(&client, &app, id).await;
    assert_eq!(view["status"], "refused", "{view}");
    assert_eq!(view["refusal"]["reason"], "not_a_lesion", "{view}");
    assert!(view["refusal"]["advice"].as_str().unwrap().len() > 20);
    assert_eq!(view["result"], Value::Null, "a refused photo has no result");
    assert_eq!(view["error"], Value::Null, "a refusal is not a failure");

    // Stored as its own outcome: a refusal row and event, no prediction.
    let state = env.store.case_state(id).await.unwrap().unwrap();
    assert!(state.prediction.is_none());
    let refusal = state.refusal.expect("a refusal row");
    assert_eq!(refusal.result.reason, "not_a_lesion");
    assert!(refusal.result.detail["signals"]["ood"].as_f64().unwrap() > 0.0);
    let kinds = event_kinds(&env, id).await;
    assert!(kinds.contains(&"refused".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"completed".to_owned()), "{kinds:?}");
    assert!(
        !kinds.contains(&"explained".to_owned()),
        "no map for a refusal: {kinds:?}"
    );

    // The page says why and what to do, and shows no diagnosis.
    let html = client
        .get(app.url(&location))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"refusal\""), "{html}");
    assert!(html.contains("cannot judge"));
    assert!(!html.contains("id=\"verdict\"") && !html.contains("id=\"diagnoses\""));
    assert!(
        html.contains("not a medical device"),
        "the limits are on the page"
    );

    // Deleting it removes the refusal with the photo.
    let left = delete_as_uploader(&env, &client, &app, id, &cookie).await;
    assert!(left.refusal.is_none());
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_judged_photo_gets_its_occlusion_map_after_its_verdict_shown_to_the_uploader_only() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let worker = InProcessWorker::spawn(env.worker_args());
    let client = http();

    let response = upload(
        &client,
        &app,
        "lesion.jpg",
        read(&fixture_images()[0]),
        None,
        false,
    )
    .await;
    let cookie = cookie_of(&response).expect("the uploader's cookie");
    let id = redirected_case(&response);
    let location = format!("/cases/{id}");
    let view = wait_final(&client, &app, id).await;
    assert_eq!(view["status"], "done", "{view}");

    let mut map = Value::Null;
    eventually("the occlusion map is written", async || {
        map = case_json(&client, &app, id).await["explanation"].clone();
        !map.is_null()
    })
    .await;
    assert_eq!(map["map"]["grid"], 5);
    assert_eq!(map["map"]["cells"].as_array().unwrap().len(), 25);
    assert_eq!(map["cells"].as_array().unwrap().len(), 25);
    let p = view["result"]["p_malignant"].as_f64().unwrap();
    assert!(
        (map["map"]["base"].as_f64().unwrap() - p).abs() < 1e-4,
        "{map} vs {p}"
    );

    let kinds = event_kinds(&env, id).await;
    let completed = kinds.iter().position(|k| k == "completed").unwrap();
    let explained = kinds.iter().position(|k| k == "explained").unwrap();
    assert!(completed < explained, "{kinds:?}");

    // Drawn over the photo for the uploader; others see neither the photo nor the map.
    let page = |cookie: Option<String>| {
        let mut request = client.get(app.url(&location));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        async { request.send().await.unwrap().text().await.unwrap() }
    };
    let mine = page(Some(cookie.clone())).await;
    assert!(mine.contains("id=\"occlusion\"") && mine.contains("What the model looked at"));
    let theirs = page(None).await;
    assert!(!theirs.contains("id=\"occlusion\"") && !theirs.contains("/image\""));

    let left = delete_as_uploader(&env, &client, &app, id, &cookie).await;
    assert!(left.explanation.is_none());
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_maps_turned_off_no_map_is_drawn() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let mut args = env.worker_args();
    args.occlusion_grid = 0;
    let worker = InProcessWorker::spawn(args);
    let client = http();
    let id = upload_case(&client, &app, "lesion.jpg", read(&fixture_images()[1])).await;
    let view = wait_final(&client, &app, id).await;
    assert_eq!(view["status"], "done", "{view}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        case_json(&client, &app, id).await["explanation"],
        Value::Null
    );
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lesion_photo_the_model_finds_unlike_its_training_photos_is_refused_not_diagnosed() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let worker = InProcessWorker::spawn(env.worker_args());
    let client = http();
    for name in REFUSED_FIXTURES {
        let bytes = read(&root().join("tests/fixtures/ham10000").join(name));
        let id = upload_case(&client, &app, name, bytes).await;
        let view = wait_final(&client, &app, id).await;
        assert_eq!(view["status"], "refused", "{name}: {view}");
    }
    worker.stop().await.unwrap();
    app.stop().await;
}
