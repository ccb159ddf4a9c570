//! What every answer carries and what none may show: security headers on every route, no inline
//! script, and errors typed to the edge (a bug is a 500 with the request id and no internals).

use crate::common::*;

const CSP_MUST_HAVE: [&str; 4] = [
    "default-src 'none'",
    "script-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_sends_the_security_headers_and_no_page_has_inline_script_or_style() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let form = client.get(app.url("/")).send().await.unwrap();
    let cookie = cookie_of(&form).unwrap();
    let response = upload(
        &client,
        &app,
        "lesion.jpg",
        read(&fixture_images()[2]),
        Some(&cookie),
        false,
    )
    .await;
    let case = response.headers()["location"].to_str().unwrap().to_owned();
    for path in [
        "/".to_owned(),
        case.clone(),
        format!("{case}/panel"),
        format!("{case}/image"),
        format!("{case}/history"),
        format!("{case}/wait"),
        format!("/api{case}"),
        "/my-cases".to_owned(),
        "/model".to_owned(),
        "/model/card.json".to_owned(),
        "/static/case.js".to_owned(),
        "/static/upload.js".to_owned(),
        "/static/mole.css".to_owned(),
        "/static/admin.js".to_owned(),
        "/admin/sign-in".to_owned(),
        "/healthz".to_owned(),
        format!("/cases/{}", uuid::Uuid::new_v4()),
        "/no/such/page".to_owned(),
    ] {
        let response = client
            .get(app.url(&path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let h = response.headers().clone();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_str()
            .unwrap()
            .to_owned();
        for part in CSP_MUST_HAVE {
            assert!(csp.contains(part), "{path}: CSP {csp:?} lacks {part:?}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let is_html = h
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        if is_html {
            let html = response.text().await.unwrap();
            // Every <script> has a src; no inline handlers, no inline styles.
            for (i, _) in html.match_indices("<script") {
                let tag = &html[i..i + html[i..].find('>').unwrap()];
                assert!(tag.contains(" src="), "{path}: inline script {tag}");
            }
            for attribute in [" onsubmit=", " onclick=", " onload=", " style="] {
                assert!(!html.contains(attribute), "{path}: {attribute}");
            }
            assert!(!html.contains("<style"), "{path}: inline stylesheet");
        }
    }
    // The evaluator's report keeps its own, stricter policy, still without framing.
    let report = client.get(app.url("/model/report")).send().await.unwrap();
    let csp = report.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src") || csp.contains("default-src 'none'"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bug_answers_500_with_the_request_id_and_no_internal_text() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let id = upload_case(&client, &app, "lesion.jpg", read(&fixture_images()[3])).await;
    // A schema that does not match the code: not something that passes by itself.
    sqlx::query("ALTER TABLE predictions RENAME TO predictions_elsewhere")
        .execute(env.store.pg_pool().expect("PostgreSQL"))
        .await
        .unwrap();

    let page = client
        .get(app.url(&format!("/cases/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 500);
    assert!(
        page.headers().get("retry-after").is_none(),
        "a bug is no 503"
    );
    let request_id = page.headers()["x-request-id"].to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains(&request_id), "the page quotes the request id");
    for needle in [
        "predictions",
        "relation",
        "does not exist",
        "sqlx",
        "database error",
    ] {
        assert!(!html.contains(needle), "the page shows {needle:?}: {html}");
    }

    let api = client
        .get(app.url(&format!("/api/cases/{id}")))
        .header("x-request-id", "quote-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 500);
    let body = api.text().await.unwrap();
    for needle in ["predictions", "relation", "does not exist"] {
        assert!(!body.contains(needle), "the API shows {needle:?}: {body}");
    }
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "internal_error");
    assert_eq!(body["error"]["request_id"], "quote-me-123");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_page_and_health_show_no_server_paths_or_error_text() {
    let env = TestEnv::new().await;
    let mut args = env.serve_args();
    // A report folder that does not exist: the page says there is none, not where it looked.
    let missing = std::env::temp_dir().join(format!("mole-nowhere-{}", uuid::Uuid::new_v4()));
    args.model_report = Some(missing.clone());
    let app = App::spawn_with(args).await;
    let client = http();
    let html = client
        .get(app.url("/model"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"no-report\""));
    let root = root().display().to_string();
    for path in [
        missing.display().to_string(),
        root,
        model_path().display().to_string(),
    ] {
        assert!(!html.contains(&path), "/model shows {path}");
    }
    let health = client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!health.contains("error"), "{health}");
    app.stop().await;
}
