//! The person's side of the pages: the honest wait (queue position, "delayed" without a worker),
//! the history in words, the way forward after a result, and "my cases" (by the uploader's
//! cookie only, tried by each kind of caller).

use serde_json::Value;
use uuid::Uuid;

use crate::common::*;

/// Uploads a fixture as the browser holding `cookie`; returns the case id.
async fn send(app: &App, cookie: &str, fixture: usize) -> Uuid {
    let response = upload(
        &http(),
        app,
        "lesion.jpg",
        read(&fixture_images()[fixture]),
        Some(cookie),
        false,
    )
    .await;
    redirected_case(&response)
}

async fn get_text(app: &App, path: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = http().get(app.url(path));
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn wait_json(app: &App, id: Uuid) -> Value {
    let (status, body) = get_text(app, &format!("/cases/{id}/wait"), None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A worker's health report as a live worker writes it, without a worker (so cases stay queued).
async fn pretend_a_worker_is_up(env: &TestEnv) {
    env.jobs
        .report_worker_health(&mole_jobs::WorkerHealth {
            worker: "pretend".to_owned(),
            model_version: "mole-v2@test".to_owned(),
            ok: true,
            forward_ms: Some(5.0),
            error: None,
            at_unix_ms: mole_jobs::unix_millis(),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_worker_the_case_page_says_the_analysis_is_delayed_and_the_photo_is_safe() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let cookie = browser_cookie(&app).await;
    let id = send(&app, &cookie, 0).await;

    let (status, page) = get_text(&app, &format!("/cases/{id}"), Some(&cookie)).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"wait\""), "{page}");
    assert!(page.contains("data-delayed=\"true\""));
    assert!(page.contains("The analysis is delayed") && page.contains("stored safely"));
    let wait = wait_json(&app, id).await;
    assert_eq!(wait["delayed"], true, "{wait}");
    assert_eq!(wait["workers"], 0);

    // Once a worker has analysed it, nothing more is said about waiting.
    let worker = InProcessWorker::spawn(env.worker_args());
    let done = wait_final(&http(), &app, id).await;
    assert_eq!(done["status"], "done");
    let wait = wait_json(&app, id).await;
    assert_eq!(wait["text"], "", "{wait}");
    assert_eq!(wait["delayed"], false);
    let (_, page) = get_text(&app, &format!("/cases/{id}"), Some(&cookie)).await;
    assert!(!page.contains("id=\"wait\""));
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_case_knows_how_many_photos_are_ahead_of_it() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    pretend_a_worker_is_up(&env).await;
    let cookie = browser_cookie(&app).await;
    let ids = [
        send(&app, &cookie, 0).await,
        send(&app, &cookie, 1).await,
        send(&app, &cookie, 2).await,
    ];
    for (ahead, id) in ids.iter().enumerate() {
        let wait = wait_json(&app, *id).await;
        assert_eq!(wait["delayed"], false, "{wait}");
        assert_eq!(wait["ahead"], ahead, "{wait}");
        let text = wait["text"].as_str().unwrap();
        match ahead {
            0 => assert!(text.contains("next in the queue"), "{text}"),
            1 => assert!(text.contains("1 photo is ahead"), "{text}"),
            n => assert!(text.contains(&format!("{n} photos are ahead")), "{text}"),
        }
    }
    // Nothing finished recently: no time is promised.
    assert!(wait_json(&app, ids[2]).await["expected_seconds"].is_null());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_page_gives_a_date_advice_a_way_forward_and_the_history_in_words() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let worker = InProcessWorker::spawn(env.worker_args());
    let cookie = browser_cookie(&app).await;
    let id = send(&app, &cookie, 3).await;
    let done = wait_final(&http(), &app, id).await;
    assert_eq!(done["status"], "done");

    let (_, page) = get_text(&app, &format!("/cases/{id}"), Some(&cookie)).await;
    assert!(page.contains("id=\"check-another\""));
    assert!(
        page.contains("<time class=\"local\" datetime=\""),
        "the date"
    );
    let see_a_doctor = done["result"]["see_a_doctor"].as_bool().unwrap();
    if see_a_doctor {
        assert!(page.contains("within about two weeks"), "how soon and whom");
    } else {
        assert!(page.contains("ABCDE") && page.contains("three months"));
    }
    // Engineering figures sit in a fold.
    let fold = page.find("id=\"technical\"").expect("a details fold");
    assert!(page.find("id=\"queue-time\"").unwrap() > fold);

    // The history, in words, from the uploader's side, never an actor code.
    let (status, history) = get_text(&app, &format!("/cases/{id}/history"), Some(&cookie)).await;
    assert_eq!(status, 200);
    for words in [
        "You sent the photo.",
        "It joined the queue for analysis.",
        "The model started analysing it.",
        "The model analysed it.",
        "You viewed it.",
    ] {
        assert!(history.contains(words), "{words:?} missing in {history}");
    }
    for code in ["uploader:", "worker:", "visitor", "staff:"] {
        assert!(!history.contains(code), "{code} in {history}");
    }
    // A visitor with the link does not get the history (the uploader's, like the photo).
    let (status, _) = get_text(&app, &format!("/cases/{id}/history"), None).await;
    assert_eq!(status, 403);
    let visitor = browser_cookie(&app).await;
    let (status, _) = get_text(&app, &format!("/cases/{id}/history"), Some(&visitor)).await;
    assert_eq!(status, 403);
    get_text(&app, &format!("/cases/{id}"), Some(&visitor)).await;
    let (_, history) = get_text(&app, &format!("/cases/{id}/history"), Some(&cookie)).await;
    assert!(
        history.contains("Someone with the link viewed it."),
        "{history}"
    );
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_cases_lists_only_this_browsers_cases_newest_first_and_each_can_be_deleted_there() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let mine = browser_cookie(&app).await;
    let theirs = browser_cookie(&app).await;
    let first = send(&app, &mine, 0).await;
    let second = send(&app, &mine, 1).await;
    let other = send(&app, &theirs, 2).await;

    // The uploader: both cases, newest first, not the other browser's.
    let (status, page) = get_text(&app, "/my-cases", Some(&mine)).await;
    assert_eq!(status, 200);
    let (a, b) = (
        page.find(&second.to_string()).expect("the newer case"),
        page.find(&first.to_string()).expect("the older case"),
    );
    assert!(a < b, "newest first");
    assert!(!page.contains(&other.to_string()), "another browser's case");
    assert_eq!(page.matches("class=\"my-case\"").count(), 2);

    // Another browser with the link to my case: its own case only.
    get_text(&app, &format!("/cases/{first}"), Some(&theirs)).await;
    let (_, page) = get_text(&app, "/my-cases", Some(&theirs)).await;
    assert!(page.contains(&other.to_string()));
    assert!(!page.contains(&first.to_string()) && !page.contains(&second.to_string()));
    // No cookie: nothing, and a word on why.
    let (status, page) = get_text(&app, "/my-cases", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("id=\"no-cases\""));
    for id in [first, second, other] {
        assert!(!page.contains(&id.to_string()));
    }
    // A forged, malformed cookie gets nothing either.
    let (_, page) = get_text(&app, "/my-cases", Some("mole_uploader=not-hex")).await;
    assert!(page.contains("id=\"no-cases\""));

    // Deleting from the list comes back to the list, without the case.
    let response = http()
        .post(app.url(&format!("/cases/{first}/delete")))
        .header("cookie", &mine)
        .form(&[("next", "my-cases")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/my-cases?deleted");
    let (_, page) = get_text(&app, "/my-cases?deleted", Some(&mine)).await;
    assert!(page.contains("were deleted"));
    assert!(!page.contains(&first.to_string()));
    assert!(page.contains(&second.to_string()));
    // Another browser cannot delete through the list's form.
    let response = http()
        .post(app.url(&format!("/cases/{second}/delete")))
        .header("cookie", &theirs)
        .form(&[("next", "my-cases")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // Any other `next` goes to the front page, never to an address the form names.
    let response = http()
        .post(app.url(&format!("/cases/{second}/delete")))
        .header("cookie", &mine)
        .form(&[("next", "https://elsewhere.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["location"], "/?deleted");
    app.stop().await;
}
