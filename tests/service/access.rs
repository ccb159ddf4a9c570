//! One access rule for every case route: anyone with the link sees the verdict; the photo, the
//! history and deletion are the uploader's. Each route is tried by each kind of caller: the
//! uploader (their cookie), a visitor with a cookie of their own, and a stranger with none.

use reqwest::StatusCode;
use uuid::Uuid;

use crate::common::*;

/// The kinds of caller; `None` sends no cookie.
struct Callers {
    uploader: String,
    visitor: String,
}

impl Callers {
    fn all(&self) -> [(&'static str, Option<&str>); 3] {
        [
            ("uploader", Some(self.uploader.as_str())),
            ("visitor with a cookie", Some(self.visitor.as_str())),
            ("stranger without a cookie", None),
        ]
    }
}

/// An app with one uploaded case; returns the case id and the callers' cookies.
async fn one_case(env: &TestEnv) -> (App, Uuid, Callers) {
    let app = App::spawn(env).await;
    let client = http();
    let uploader = browser_cookie(&app).await;
    let visitor = browser_cookie(&app).await;
    assert_ne!(uploader, visitor);
    let response = upload(
        &client,
        &app,
        "lesion.jpg",
        read(&fixture_images()[0]),
        Some(&uploader),
        false,
    )
    .await;
    let id = redirected_case(&response);
    (app, id, Callers { uploader, visitor })
}

async fn get(app: &App, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut request = http().get(app.url(path));
    if let Some(c) = cookie {
        request = request.header("cookie", c);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_uploader_gets_the_photo_and_a_stranger_with_the_link_gets_403() {
    let env = TestEnv::new().await;
    let (app, id, callers) = one_case(&env).await;
    for (who, cookie) in callers.all() {
        let response = get(&app, &format!("/cases/{id}/image"), cookie).await;
        if who == "uploader" {
            assert_eq!(response.status(), 200, "{who}");
            assert_eq!(response.headers()["content-type"], "image/jpeg");
            assert_eq!(response.headers()["cache-control"], "private, no-store");
            let bytes = response.bytes().await.unwrap();
            assert!(bytes.starts_with(b"\xFF\xD8"), "{who} gets the photo");
        } else {
            assert_eq!(response.status(), 403, "{who}");
            let body = response.bytes().await.unwrap();
            assert!(!body.starts_with(b"\xFF\xD8"), "{who} gets no photo");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_with_the_link_sees_the_verdict_page_but_only_the_uploader_sees_photo_history_and_delete()
 {
    let env = TestEnv::new().await;
    let (app, id, callers) = one_case(&env).await;
    for (who, cookie) in callers.all() {
        let response = get(&app, &format!("/cases/{id}"), cookie).await;
        assert_eq!(response.status(), 200, "{who}");
        let html = response.text().await.unwrap();
        assert!(html.contains("id=\"case\""), "{who} sees the panel");
        let mine = who == "uploader";
        assert_eq!(html.contains("/image\""), mine, "{who}: photo");
        assert_eq!(html.contains("id=\"delete\""), mine, "{who}: delete button");
        assert_eq!(html.contains("id=\"history\""), mine, "{who}: history");

        // The live part and the JSON: the verdict's routes, open to the link.
        let panel = get(&app, &format!("/cases/{id}/panel"), cookie).await;
        assert_eq!(panel.status(), 200, "{who}");
        let panel = panel.text().await.unwrap();
        assert!(panel.contains(&format!("data-case-id=\"{id}\"")), "{who}");
        assert!(
            !panel.contains("/image"),
            "{who}: the panel never holds the photo"
        );
        // The history fragment follows the history's rule; the wait is the verdict's.
        let history = get(&app, &format!("/cases/{id}/history"), cookie).await;
        assert_eq!(
            history.status(),
            if mine { 200 } else { 403 },
            "{who}: history"
        );
        let wait = get(&app, &format!("/cases/{id}/wait"), cookie).await;
        assert_eq!(wait.status(), 200, "{who}: wait");
        let json = get(&app, &format!("/api/cases/{id}"), cookie).await;
        assert_eq!(json.status(), 200, "{who}");
        let json: serde_json::Value = json.json().await.unwrap();
        assert_eq!(json["status"], "queued", "{who}");
        let events = get(&app, &format!("/cases/{id}/events"), cookie).await;
        assert_eq!(events.status(), 200, "{who}");
        assert!(
            events.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_but_the_uploader_can_delete_a_case_by_form_or_by_api() {
    let env = TestEnv::new().await;
    let (app, id, callers) = one_case(&env).await;
    let client = http();
    for (who, cookie) in callers.all().into_iter().filter(|(w, _)| *w != "uploader") {
        let mut form = client.post(app.url(&format!("/cases/{id}/delete")));
        let mut api = client.delete(app.url(&format!("/api/cases/{id}")));
        if let Some(c) = cookie {
            form = form.header("cookie", c);
            api = api.header("cookie", c);
        }
        let form = form.send().await.unwrap();
        assert_eq!(form.status(), 403, "{who}");
        let api = api.send().await.unwrap();
        assert_eq!(api.status(), 403, "{who}");
        let body: serde_json::Value = api.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{who}");
    }
    assert!(env.store.image(id).await.unwrap().is_some(), "still there");

    let deleted = client
        .delete(app.url(&format!("/api/cases/{id}")))
        .header("cookie", &callers.uploader)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(env.store.image(id).await.unwrap().is_none(), "photo gone");

    // Gone for everyone, on every route.
    for (who, cookie) in callers.all() {
        for path in [
            format!("/cases/{id}"),
            format!("/cases/{id}/panel"),
            format!("/cases/{id}/image"),
            format!("/cases/{id}/events"),
            format!("/cases/{id}/history"),
            format!("/cases/{id}/wait"),
            format!("/api/cases/{id}"),
        ] {
            let response = get(&app, &path, cookie).await;
            assert_eq!(response.status(), 410, "{who} {path}");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_malformed_case_ids_are_404_on_every_case_route() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    for id in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        for path in [
            format!("/cases/{id}"),
            format!("/cases/{id}/panel"),
            format!("/cases/{id}/image"),
            format!("/cases/{id}/events"),
            format!("/cases/{id}/history"),
            format!("/cases/{id}/wait"),
            format!("/api/cases/{id}"),
        ] {
            let response = client.get(app.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
        }
        let response = client
            .post(app.url(&format!("/cases/{id}/delete")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{id}");
        let response = client
            .delete(app.url(&format!("/api/cases/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{id}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_a_case_page_records_one_view_per_viewer_within_the_window() {
    let env = TestEnv::new().await;
    let (app, id, callers) = one_case(&env).await;
    // The page without JavaScript reloads itself every few seconds: ten reloads by each caller.
    for _ in 0..10 {
        for (_, cookie) in callers.all() {
            assert_eq!(
                get(&app, &format!("/cases/{id}"), cookie).await.status(),
                200
            );
        }
    }
    let views = |events: Vec<mole_storage::CaseEvent>| -> Vec<String> {
        events
            .into_iter()
            .filter(|e| e.kind == mole_storage::EventKind::Viewed)
            .map(|e| e.actor)
            .collect()
    };
    let seen = views(env.store.events(id).await.unwrap());
    assert_eq!(seen.len(), 3, "one view per viewer: {seen:?}");
    assert!(seen[0].starts_with("uploader:"));
    assert!(seen[1].starts_with("visitor:"));
    assert_eq!(seen[2], "visitor");

    // Once the window has passed for the uploader, their next visit is recorded again.
    sqlx::query(
        "UPDATE case_views SET recorded_at = now() - interval '2 hours' \
         WHERE case_id = $1 AND viewer LIKE 'uploader:%'",
    )
    .bind(id)
    .execute(env.store.pg_pool().expect("PostgreSQL"))
    .await
    .unwrap();
    get(&app, &format!("/cases/{id}"), Some(&callers.uploader)).await;
    get(&app, &format!("/cases/{id}"), Some(&callers.uploader)).await;
    let seen = views(env.store.events(id).await.unwrap());
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen[3].starts_with("uploader:"));
    app.stop().await;
}
