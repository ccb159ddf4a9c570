//! The clinic's pages under `/admin`: sign-in (throttled, CSRF-checked, expiring sessions), who
//! may reach what (no session, reviewer, admin, the uploader, a stranger), reviews (versioned,
//! one audit event each), deletion (tombstone), the list and its CSV export.

use std::collections::HashMap;
use std::time::Duration;

use mole_storage::{
    Analysis, Claim, ClassProbability, Completion, EventKind, NewCase, NewPrediction, Role,
    StoredImage,
};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::common::*;

/// The card's seven diagnoses, malignant ones marked.
pub const CLASSES: [(&str, bool); 7] = [
    ("akiec", true),
    ("bcc", true),
    ("bkl", false),
    ("df", false),
    ("mel", true),
    ("nv", false),
    ("vasc", false),
];

/// A staff account made as `mole admin add-user` makes it; returns its password.
pub async fn account(env: &TestEnv, username: &str, role: Role) -> String {
    account_in(&env.store, username, role).await
}

/// [`account`] in any store.
pub async fn account_in(store: &mole_storage::Store, username: &str, role: Role) -> String {
    let password = format!("{username}-correct-horse-battery");
    let hash = mole_web::auth::hash_password(&password).unwrap();
    store
        .create_account(username, role, &hash)
        .await
        .unwrap()
        .expect("a new user name");
    password
}

/// A photo stored and analysed (without a worker: the storage calls a worker makes), with the
/// model saying `top` (and the verdict that goes with its malignancy); the uploader's cookie
/// token is `uploader_token`.
pub async fn analysed_case(env: &TestEnv, top: &str, uploader_token: &str) -> Uuid {
    let id = Uuid::new_v4();
    let mut png = Vec::new();
    image::RgbImage::from_pixel(40, 40, image::Rgb([120, 80, 60]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    env.store
        .create_case(NewCase {
            id,
            request_id: format!("req-{}", id.simple()),
            uploader: mole_web::identity::hash_token(uploader_token),
            image_sha256: Uuid::new_v4().simple().to_string(),
            image: StoredImage {
                content_type: "image/png".to_owned(),
                width: 40,
                height: 40,
                bytes: png,
            },
            model_input: None,
        })
        .await
        .unwrap();
    let claim = env
        .store
        .claim(id, "w", Duration::from_secs(60), 5, None)
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Claimed { .. }));
    let malignant = CLASSES.iter().any(|(c, m)| *c == top && *m);
    let classes: Vec<ClassProbability> = CLASSES
        .iter()
        .map(|(code, m)| ClassProbability {
            code: (*code).to_owned(),
            name: code.to_uppercase(),
            malignant: *m,
            probability: if *code == top { 0.7 } else { 0.05 },
        })
        .collect();
    env.store
        .complete_batch(&[Completion {
            case_id: id,
            worker: "w".to_owned(),
            analysis: Analysis::Diagnosis(NewPrediction {
                model_version: "mole-v1@test".to_owned(),
                verdict: if malignant {
                    "see_a_doctor"
                } else {
                    "looks_benign"
                }
                .to_owned(),
                p_malignant: if malignant { 0.8 } else { 0.15 },
                threshold: 0.33,
                top_class: top.to_owned(),
                classes,
            }),
            queue_ms: 4,
            inference_ms: 9,
            batch_size: 1,
        }])
        .await
        .unwrap();
    id
}

/// A browser-like client of the clinic's pages: the session cookie and the form token.
pub struct Staff {
    pub cookie: String,
    pub csrf: String,
}

/// The value of the first `name="csrf"` field of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a token")
        + "name=\"csrf\" value=\"".len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// The `mole_staff` cookie a response sets, as a `Cookie` header value.
fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("mole_staff="))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// Opens the sign-in page: its session cookie and form token.
async fn sign_in_form(app: &App) -> (String, String) {
    let page = http().get(app.url("/admin/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let cookie = session_cookie(&page).expect("the sign-in page starts a session");
    let csrf = csrf_of(&page.text().await.unwrap());
    (cookie, csrf)
}

/// Posts the sign-in form.
async fn try_sign_in(
    app: &App,
    cookie: &str,
    csrf: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    http()
        .post(app.url("/admin/sign-in"))
        .header("cookie", cookie)
        .form(&[
            ("username", username),
            ("password", password),
            ("csrf", csrf),
            ("next", "/admin/cases"),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in and reads the form token of the signed-in session.
pub async fn sign_in(app: &App, username: &str, password: &str) -> Staff {
    let (cookie, csrf) = sign_in_form(app).await;
    let response = try_sign_in(app, &cookie, &csrf, username, password).await;
    assert_eq!(response.status(), 303, "signed in");
    assert_eq!(response.headers()["location"], "/admin/cases");
    let cookie = session_cookie(&response).expect("a new session id at sign-in");
    let page = http()
        .get(app.url("/admin/cases"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csrf = csrf_of(&page.text().await.unwrap());
    Staff { cookie, csrf }
}

impl Staff {
    pub async fn get(&self, app: &App, path: &str) -> reqwest::Response {
        http()
            .get(app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    pub async fn json(&self, app: &App, path: &str) -> Value {
        let r = http()
            .get(app.url(path))
            .header("cookie", &self.cookie)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }

    pub async fn post(&self, app: &App, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &self.csrf));
        http()
            .post(app.url(path))
            .header("cookie", &self.cookie)
            .form(&fields)
            .send()
            .await
            .unwrap()
    }

    pub async fn review(
        &self,
        app: &App,
        id: Uuid,
        diagnosis: &str,
        verdict: &str,
        note: &str,
    ) -> reqwest::Response {
        self.post(
            app,
            &format!("/admin/cases/{id}/review"),
            &[
                ("diagnosis", diagnosis),
                ("verdict", verdict),
                ("note", note),
            ],
        )
        .await
    }
}

/// Every route of the clinic, with its method.
fn routes(case: Uuid, account: Uuid) -> Vec<(&'static str, String)> {
    vec![
        ("GET", "/admin".to_owned()),
        ("GET", "/admin/cases".to_owned()),
        ("GET", "/admin/cases?status=done&reviewed=no".to_owned()),
        ("GET", "/admin/cases.csv".to_owned()),
        ("GET", format!("/admin/cases/{case}")),
        ("GET", format!("/admin/cases/{case}/image")),
        ("POST", format!("/admin/cases/{case}/review")),
        ("POST", format!("/admin/cases/{case}/delete")),
        ("GET", "/admin/agreement".to_owned()),
        ("GET", "/admin/users".to_owned()),
        ("POST", "/admin/users".to_owned()),
        ("POST", format!("/admin/users/{account}/disable")),
        ("POST", "/admin/sign-out".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_without_a_session_sends_a_browser_to_sign_in_and_a_json_client_401() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    account(&env, "ada", Role::Admin).await;
    let ada = env.store.account_by_username("ada").await.unwrap().unwrap();
    let uploader_token = "ab".repeat(32);
    let case = analysed_case(&env, "mel", &uploader_token).await;
    let callers = [
        ("no cookie", None),
        // The case's own uploader is no member of staff.
        (
            "the uploader",
            Some(format!("mole_uploader={uploader_token}")),
        ),
        // A session id nobody was given.
        (
            "a made-up session",
            Some("mole_staff=AAAAAAAAAAAAAAAAAAAAAA".to_owned()),
        ),
    ];
    for (who, cookie) in &callers {
        for (method, path) in routes(case, ada.id) {
            for json in [false, true] {
                let mut request = match method {
                    "GET" => http().get(app.url(&path)),
                    _ => http().post(app.url(&path)).form(&[("csrf", "x")]),
                };
                if let Some(c) = cookie {
                    request = request.header("cookie", c);
                }
                if json {
                    request = request.header("accept", "application/json");
                }
                let response = request.send().await.unwrap();
                let what = format!("{who}: {method} {path} (json: {json})");
                if path == "/admin" {
                    // The clinic's front door only points at the list, which asks to sign in.
                    assert_eq!(response.status(), 303, "{what}");
                    continue;
                }
                if json {
                    assert_eq!(response.status(), 401, "{what}");
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["error"]["code"], "sign_in_required", "{what}");
                } else {
                    assert_eq!(response.status(), 303, "{what}");
                    let to = response.headers()["location"].to_str().unwrap();
                    assert!(to.starts_with("/admin/sign-in?next="), "{what}: {to}");
                    let page = http().get(app.url(to)).send().await.unwrap();
                    assert_eq!(page.status(), 200, "{what}");
                    assert!(page.text().await.unwrap().contains("id=\"sign-in-form\""));
                }
            }
        }
    }
    // Nothing was done by anyone.
    assert!(env.store.image(case).await.unwrap().is_some());
    assert!(env.store.reviews(case).await.unwrap().is_empty());
    let events = env.store.events(case).await.unwrap();
    assert!(
        !events
            .iter()
            .any(|e| e.kind == EventKind::Viewed || e.kind == EventKind::Reviewed),
        "{events:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_reads_and_reviews_but_cannot_delete_or_manage_accounts_and_an_admin_can() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let rp = account(&env, "rita", Role::Reviewer).await;
    let ap = account(&env, "ada", Role::Admin).await;
    let rita_id = env
        .store
        .account_by_username("rita")
        .await
        .unwrap()
        .unwrap()
        .id;
    let case = analysed_case(&env, "nv", &"cd".repeat(32)).await;
    let rita = sign_in(&app, "rita", &rp).await;
    let ada = sign_in(&app, "ada", &ap).await;

    for (who, staff) in [("reviewer", &rita), ("admin", &ada)] {
        for path in [
            "/admin/cases".to_owned(),
            "/admin/cases.csv".to_owned(),
            format!("/admin/cases/{case}"),
            "/admin/agreement".to_owned(),
        ] {
            assert_eq!(staff.get(&app, &path).await.status(), 200, "{who} {path}");
        }
        let photo = staff.get(&app, &format!("/admin/cases/{case}/image")).await;
        assert_eq!(photo.status(), 200, "{who}");
        assert_eq!(photo.headers()["cache-control"], "private, no-store");
        assert!(photo.bytes().await.unwrap().starts_with(b"\x89PNG"));
    }
    assert_eq!(
        rita.review(&app, case, "nv", "looks_benign", "")
            .await
            .status(),
        303
    );

    // Admin-only actions: refused to the reviewer, and nothing happens.
    let users = rita.get(&app, "/admin/users").await;
    assert_eq!(users.status(), 403);
    let body = users.text().await.unwrap();
    assert!(body.contains("Your role does not allow this"), "{body}");
    let list = rita.get(&app, "/admin/cases").await.text().await.unwrap();
    assert!(
        !list.contains("href=\"/admin/users\""),
        "no link to accounts"
    );
    let detail = rita
        .get(&app, &format!("/admin/cases/{case}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!detail.contains("id=\"delete\""), "no delete button");
    let refused = [
        rita.post(&app, &format!("/admin/cases/{case}/delete"), &[])
            .await,
        rita.post(
            &app,
            "/admin/users",
            &[
                ("username", "mallory"),
                ("role", "admin"),
                ("password", "mallory-long-password"),
            ],
        )
        .await,
        rita.post(
            &app,
            &format!(
                "/admin/users/{}/disable",
                env.store
                    .account_by_username("ada")
                    .await
                    .unwrap()
                    .unwrap()
                    .id
            ),
            &[],
        )
        .await,
    ];
    for r in refused {
        assert_eq!(r.status(), 403, "{}", r.url());
    }
    assert!(
        env.store.image(case).await.unwrap().is_some(),
        "not deleted"
    );
    assert!(
        env.store
            .account_by_username("mallory")
            .await
            .unwrap()
            .is_none(),
        "no account made"
    );
    assert!(
        env.store
            .account_by_username("ada")
            .await
            .unwrap()
            .unwrap()
            .disabled_at
            .is_none()
    );

    // The admin may.
    assert_eq!(ada.get(&app, "/admin/users").await.status(), 200);
    let added = ada
        .post(
            &app,
            "/admin/users",
            &[
                ("username", "rob"),
                ("role", "reviewer"),
                ("password", "rob-has-a-long-password"),
            ],
        )
        .await;
    assert_eq!(added.status(), 303);
    assert!(
        env.store
            .account_by_username("rob")
            .await
            .unwrap()
            .is_some()
    );
    let disabled = ada
        .post(&app, &format!("/admin/users/{rita_id}/disable"), &[])
        .await;
    assert_eq!(disabled.status(), 303);
    // Disabling ends the reviewer's session at once.
    let after = rita.get(&app, "/admin/cases").await;
    assert_eq!(after.status(), 303);
    let deleted = ada
        .post(&app, &format!("/admin/cases/{case}/delete"), &[])
        .await;
    assert_eq!(deleted.status(), 303);
    assert!(env.store.image(case).await.unwrap().is_none(), "deleted");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_without_the_sessions_token_is_refused_and_changes_nothing() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let ap = account(&env, "ada", Role::Admin).await;
    let case = analysed_case(&env, "bkl", &"ef".repeat(32)).await;
    let ada = sign_in(&app, "ada", &ap).await;
    let other = sign_in(&app, "ada", &ap).await;
    assert_ne!(ada.csrf, other.csrf, "a token per session");

    for token in [
        None,
        Some(String::new()),
        Some("0".repeat(64)),
        Some(other.csrf.clone()),
    ] {
        let mut form = vec![
            ("diagnosis", "bkl".to_owned()),
            ("verdict", "looks_benign".to_owned()),
        ];
        if let Some(t) = &token {
            form.push(("csrf", t.clone()));
        }
        for path in [
            format!("/admin/cases/{case}/review"),
            format!("/admin/cases/{case}/delete"),
            "/admin/sign-out".to_owned(),
        ] {
            let response = http()
                .post(app.url(&path))
                .header("cookie", &ada.cookie)
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::FORBIDDEN,
                "{path} with {token:?}"
            );
            let body = response.text().await.unwrap();
            assert!(body.contains("csrf_token_invalid"), "{path}: {body}");
        }
    }
    assert!(
        env.store.reviews(case).await.unwrap().is_empty(),
        "no review"
    );
    assert!(
        env.store.image(case).await.unwrap().is_some(),
        "not deleted"
    );
    assert_eq!(
        ada.get(&app, "/admin/cases").await.status(),
        200,
        "still signed in"
    );

    // The sign-in form too: a token from another session is refused before the password.
    let (cookie, _) = sign_in_form(&app).await;
    let (_, foreign) = sign_in_form(&app).await;
    let response = try_sign_in(&app, &cookie, &foreign, "ada", &ap).await;
    assert_eq!(response.status(), 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_wrong_password_in_a_row_is_refused_without_checking_it() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let password = account(&env, "rita", Role::Reviewer).await;
    let (cookie, csrf) = sign_in_form(&app).await;
    for attempt in 1..=5 {
        let r = try_sign_in(&app, &cookie, &csrf, "rita", "not-the-password").await;
        assert_eq!(r.status(), 401, "attempt {attempt}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Wrong user name or password")
        );
    }
    // The sixth, with the right password: refused all the same, so it was never checked.
    let sixth = try_sign_in(&app, &cookie, &csrf, "rita", &password).await;
    assert_eq!(sixth.status(), 429);
    let retry: u64 = sixth.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    assert!(
        sixth
            .text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins")
    );
    let list = http()
        .get(app.url("/admin/cases"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 303, "no session was signed in");
    let actions: Vec<String> = env
        .store
        .staff_events(50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "sign_in_failed").count(), 5);
    assert_eq!(actions[0], "sign_in_refused");

    // Once the lockout has passed the right password works, and the run of failures ends.
    sqlx::query("UPDATE sign_in_throttle SET last_failure_at = now() - interval '1 hour'")
        .execute(env.store.pg_pool().expect("PostgreSQL"))
        .await
        .unwrap();
    let r = try_sign_in(&app, &cookie, &csrf, "rita", &password).await;
    assert_eq!(r.status(), 303);
    let failures: i32 =
        sqlx::query_scalar("SELECT failures FROM sign_in_throttle WHERE key = 'account:rita'")
            .fetch_one(env.store.pg_pool().expect("PostgreSQL"))
            .await
            .unwrap();
    assert_eq!(failures, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_address_lock_it_for_every_account_name() {
    let env = TestEnv::new().await;
    let mut args = env.serve_args();
    args.signin_address_max_failures = 3;
    let app = App::spawn_with(args).await;
    let password = account(&env, "rita", Role::Reviewer).await;
    let (cookie, csrf) = sign_in_form(&app).await;
    for name in ["alice", "bob", "carol"] {
        let r = try_sign_in(&app, &cookie, &csrf, name, "guess-guess-guess").await;
        assert_eq!(r.status(), 401, "{name}");
    }
    // A fourth name, a real account with its right password: the address is locked.
    let r = try_sign_in(&app, &cookie, &csrf, "rita", &password).await;
    assert_eq!(r.status(), 429);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_is_secure_and_ends_at_sign_out_expiry_or_a_password_reset() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let password = account(&env, "rita", Role::Reviewer).await;
    let page = http().get(app.url("/admin/sign-in")).send().await.unwrap();
    let set = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("mole_staff="))
        .unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/admin"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }

    // Signing out ends the session: its cookie no longer signs anyone in.
    let rita = sign_in(&app, "rita", &password).await;
    let out = rita.post(&app, "/admin/sign-out", &[]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(rita.get(&app, "/admin/cases").await.status(), 303);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_sessions WHERE data ? 'staff'")
        .fetch_one(env.store.pg_pool().expect("PostgreSQL"))
        .await
        .unwrap();
    assert_eq!(left, 0, "the session's record is gone");

    // An expired session (idle too long) is refused.
    let rita = sign_in(&app, "rita", &password).await;
    sqlx::query("UPDATE staff_sessions SET expires_at = now() - interval '1 second'")
        .execute(env.store.pg_pool().expect("PostgreSQL"))
        .await
        .unwrap();
    assert_eq!(rita.get(&app, "/admin/cases").await.status(), 303);

    // A password reset ends every session of the account.
    let rita = sign_in(&app, "rita", &password).await;
    let hash = mole_web::auth::hash_password("a-brand-new-password").unwrap();
    env.store
        .set_password("rita", &hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rita.get(&app, "/admin/cases").await.status(), 303);
    sign_in(&app, "rita", "a-brand-new-password").await;
    app.stop().await;
}

async fn events_of(env: &TestEnv, id: Uuid, kind: EventKind) -> Vec<mole_storage::CaseEvent> {
    env.store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_changes_the_list_and_appends_one_event_and_an_amendment_keeps_the_first() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let password = account(&env, "rita", Role::Reviewer).await;
    let case = analysed_case(&env, "mel", &"12".repeat(32)).await;
    let rita = sign_in(&app, "rita", &password).await;
    let waiting = rita.json(&app, "/admin/cases?reviewed=no").await;
    assert_eq!(waiting["total"], 1);
    assert_eq!(waiting["summary"]["waiting_for_review"], 1);
    assert_eq!(waiting["cases"][0]["review"], Value::Null);

    let before = env.store.events(case).await.unwrap();
    let r = rita
        .review(&app, case, "mel", "see_a_doctor", "irregular border")
        .await;
    assert_eq!(r.status(), 303);
    let after = env.store.events(case).await.unwrap();
    assert_eq!(after.len(), before.len() + 1, "exactly one event appended");
    let key = |e: &mole_storage::CaseEvent| (e.id, e.kind, e.actor.clone(), e.at);
    assert_eq!(
        after[..before.len()].iter().map(key).collect::<Vec<_>>(),
        before.iter().map(key).collect::<Vec<_>>(),
        "nothing before it changed"
    );
    let event = after.last().unwrap();
    assert_eq!(event.kind, EventKind::Reviewed);
    assert_eq!(event.actor, "staff:rita");
    assert_eq!(event.detail["version"], 1);
    assert_eq!(event.detail["agrees_with_model"], true);
    assert!(event.request_id.is_some());
    assert!(
        !event.detail.to_string().contains("irregular"),
        "the note stays out of the permanent trail"
    );

    assert_eq!(
        rita.json(&app, "/admin/cases?reviewed=no").await["total"],
        0
    );
    let reviewed = rita.json(&app, "/admin/cases?reviewed=yes").await;
    assert_eq!(reviewed["total"], 1);
    assert_eq!(reviewed["cases"][0]["review"]["diagnosis"], "mel");
    assert_eq!(reviewed["summary"]["agreeing"], 1);

    // Amended: a second version; the first is kept as it was.
    let first = env.store.reviews(case).await.unwrap();
    let r = rita
        .review(&app, case, "nv", "looks_benign", "on second look, a naevus")
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/admin/cases/{case}?reviewed=2")
    );
    let reviews = env.store.reviews(case).await.unwrap();
    assert_eq!(reviews.len(), 2);
    assert_eq!(reviews[0].version, 1);
    assert_eq!(reviews[0].diagnosis, first[0].diagnosis);
    assert_eq!(reviews[0].note, first[0].note);
    assert_eq!(reviews[0].at, first[0].at);
    assert_eq!(reviews[1].version, 2);
    assert_eq!(reviews[1].diagnosis, "nv");
    assert_eq!(events_of(&env, case, EventKind::Reviewed).await.len(), 2);
    let list = rita.json(&app, "/admin/cases?reviewed=yes").await;
    assert_eq!(list["cases"][0]["review"]["version"], 2);
    assert_eq!(list["cases"][0]["review"]["diagnosis"], "nv");
    assert_eq!(list["summary"]["agreeing"], 0);

    // The staff page shows both versions.
    let html = rita
        .get(&app, &format!("/admin/cases/{case}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-version=\"1\"") && html.contains("data-version=\"2\""));
    assert!(html.contains("irregular border"));

    // A review of an unknown diagnosis is refused, nothing appended.
    let r = rita.review(&app, case, "xyz", "looks_benign", "").await;
    assert_eq!(r.status(), 422);
    assert_eq!(env.store.reviews(case).await.unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_staff_view_of_a_case_is_appended_with_its_request_id() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let password = account(&env, "rita", Role::Reviewer).await;
    let case = analysed_case(&env, "nv", &"34".repeat(32)).await;
    let rita = sign_in(&app, "rita", &password).await;
    for i in 0..3 {
        let r = http()
            .get(app.url(&format!("/admin/cases/{case}")))
            .header("cookie", &rita.cookie)
            .header("x-request-id", format!("look-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        // The page's history holds its own visit: actor, action and request id.
        assert!(html.contains(&format!("look-{i}")), "{i}");
    }
    let views = events_of(&env, case, EventKind::Viewed).await;
    assert_eq!(views.len(), 3);
    for (i, v) in views.iter().enumerate() {
        assert_eq!(v.actor, "staff:rita");
        assert_eq!(v.request_id.as_deref(), Some(format!("look-{i}").as_str()));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_to_change_or_remove_audit_events_reviews_and_staff_events() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let password = account(&env, "rita", Role::Reviewer).await;
    let case = analysed_case(&env, "nv", &"56".repeat(32)).await;
    let rita = sign_in(&app, "rita", &password).await;
    rita.review(&app, case, "nv", "looks_benign", "").await;
    for sql in [
        "UPDATE case_events SET actor = 'someone else'",
        "DELETE FROM case_events",
        "TRUNCATE case_events CASCADE",
        "UPDATE case_reviews SET diagnosis = 'mel'",
        "DELETE FROM case_reviews",
        "TRUNCATE case_reviews CASCADE",
        "UPDATE staff_events SET actor = 'nobody'",
        "DELETE FROM staff_events",
    ] {
        let error = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(env.store.pg_pool().expect("PostgreSQL"))
            .await
            .expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(env.store.reviews(case).await.unwrap()[0].diagnosis, "nv");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_case_removes_its_photo_and_personal_data_and_leaves_a_tombstone() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let rp = account(&env, "rita", Role::Reviewer).await;
    let ap = account(&env, "ada", Role::Admin).await;
    let token = "78".repeat(32);
    let case = analysed_case(&env, "mel", &token).await;
    let rita = sign_in(&app, "rita", &rp).await;
    rita.review(
        &app,
        case,
        "mel",
        "see_a_doctor",
        "Mrs Example, left shoulder",
    )
    .await;
    let ada = sign_in(&app, "ada", &ap).await;
    let r = ada
        .post(&app, &format!("/admin/cases/{case}/delete"), &[])
        .await;
    assert_eq!(r.status(), 303);

    assert!(env.store.image(case).await.unwrap().is_none(), "photo gone");
    assert!(
        env.store.prediction(case).await.unwrap().is_none(),
        "result gone"
    );
    let stored = env.store.case(case).await.unwrap().unwrap();
    assert!(stored.deleted_at.is_some());
    assert_eq!(stored.uploader, "", "the uploader's pseudonym gone");
    assert_eq!(stored.image_sha256, "", "the photo's fingerprint gone");
    let reviews = env.store.reviews(case).await.unwrap();
    assert_eq!(reviews.len(), 1, "the review stays");
    assert_eq!(reviews[0].note, None, "its note is gone");
    let deleted = events_of(&env, case, EventKind::Deleted).await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].actor, "staff:ada");

    // The public routes say it is gone, to the uploader too; staff see the tombstone's history.
    let public = http()
        .get(app.url(&format!("/cases/{case}")))
        .header("cookie", format!("mole_uploader={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 410);
    let page = rita.get(&app, &format!("/admin/cases/{case}")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("data-action=\"deleted\""));
    assert!(!html.contains("Mrs Example"));
    assert!(!html.contains("id=\"photo\"") && !html.contains("id=\"review-form\""));
    assert_eq!(
        rita.get(&app, &format!("/admin/cases/{case}/image"))
            .await
            .status(),
        410
    );
    assert_eq!(
        rita.review(&app, case, "nv", "looks_benign", "")
            .await
            .status(),
        410
    );
    // Listed among the deleted only, without its result.
    let gone = rita.json(&app, "/admin/cases?status=deleted").await;
    assert_eq!(gone["total"], 1);
    assert_eq!(gone["cases"][0]["verdict"], Value::Null);
    assert_eq!(rita.json(&app, "/admin/cases").await["total"], 0);
    app.stop().await;
}

/// The CSV body as rows of `column → value`.
fn parse_csv(text: &str) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// Every page of the list (JSON), concatenated.
async fn whole_list(staff: &Staff, app: &App, query: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut page = 1;
    loop {
        let sep = if query.is_empty() { "" } else { "&" };
        let body = staff
            .json(app, &format!("/admin/cases?{query}{sep}page={page}"))
            .await;
        all.extend(body["cases"].as_array().unwrap().iter().cloned());
        if page >= body["pages"].as_i64().unwrap() {
            assert_eq!(all.len() as i64, body["total"].as_i64().unwrap());
            return all;
        }
        page += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_export_parses_back_to_the_same_rows_as_the_list_with_the_same_filters() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let rp = account(&env, "rita", Role::Reviewer).await;
    let ap = account(&env, "ada", Role::Admin).await;
    let rita = sign_in(&app, "rita", &rp).await;
    // 70 analysed cases over the seven diagnoses (more than a page), some reviewed, one deleted,
    // one failed.
    let mut ids = Vec::new();
    for i in 0..70 {
        let top = CLASSES[i % CLASSES.len()].0;
        let id = analysed_case(&env, top, &format!("{i:064x}")).await;
        if i % 4 == 0 {
            let diagnosis = if i % 8 == 0 { top } else { "nv" };
            let note = if i == 8 { "=cmd|' /C calc'!A0" } else { "seen" };
            rita.review(&app, id, diagnosis, "looks_benign", note).await;
        }
        ids.push(id);
    }
    let ada = sign_in(&app, "ada", &ap).await;
    ada.post(&app, &format!("/admin/cases/{}/delete", ids[1]), &[])
        .await;
    let failed = Uuid::new_v4();
    env.store
        .create_case(NewCase {
            id: failed,
            request_id: "req-f".to_owned(),
            uploader: "f".repeat(64),
            image_sha256: "f".repeat(64),
            image: StoredImage {
                content_type: "image/png".to_owned(),
                width: 1,
                height: 1,
                bytes: vec![1],
            },
            model_input: None,
        })
        .await
        .unwrap();
    env.store
        .fail_case(
            failed,
            &mole_storage::Actor::system("test"),
            "not_an_image",
            "bad",
        )
        .await
        .unwrap();

    let today = chrono::Utc::now().date_naive();
    let (yesterday, tomorrow) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    for query in [
        String::new(),
        "status=done".to_owned(),
        "status=failed".to_owned(),
        "status=deleted".to_owned(),
        "verdict=see_a_doctor".to_owned(),
        "diagnosis=mel&sort=p_malignant&dir=asc".to_owned(),
        "reviewed=yes&sort=diagnosis".to_owned(),
        "reviewed=no&model=mole-v1%40test".to_owned(),
        format!("from={yesterday}&to={tomorrow}&sort=status"),
        "from=2000-01-01&to=2000-01-02".to_owned(),
    ] {
        let list = whole_list(&rita, &app, &query).await;
        let csv = rita.get(&app, &format!("/admin/cases.csv?{query}")).await;
        assert_eq!(csv.status(), 200, "{query}");
        assert!(
            csv.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let rows = parse_csv(&csv.text().await.unwrap());
        assert_eq!(rows.len(), list.len(), "{query}");
        for (row, item) in rows.iter().zip(&list) {
            let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
            assert_eq!(row["case_id"], text(&item["id"]), "{query}: same order");
            let status = if item["deleted"] == true {
                "deleted".to_owned()
            } else {
                text(&item["status"])
            };
            assert_eq!(row["status"], status, "{query}");
            assert_eq!(row["model_verdict"], text(&item["verdict"]), "{query}");
            assert_eq!(row["model_diagnosis"], text(&item["top_class"]), "{query}");
            assert_eq!(
                row["model_version"],
                text(&item["model_version"]),
                "{query}"
            );
            let review = &item["review"];
            assert_eq!(row["reviewed"], (!review.is_null()).to_string(), "{query}");
            assert_eq!(
                row["review_diagnosis"],
                text(&review["diagnosis"]),
                "{query}"
            );
            if let Some(p) = item["p_malignant"].as_f64() {
                let csv_p: f64 = row["p_malignant"].parse().unwrap();
                assert!((csv_p - p).abs() < 1e-5, "{query}");
                let p_top: f64 = row[&format!("p_{}", text(&item["top_class"]))]
                    .parse()
                    .unwrap();
                assert!((p_top - 0.7).abs() < 1e-5, "{query}");
            }
        }
    }
    // Free text a spreadsheet would run is written defused.
    let all = parse_csv(
        &rita
            .get(&app, "/admin/cases.csv?reviewed=yes")
            .await
            .text()
            .await
            .unwrap(),
    );
    let risky = all
        .iter()
        .find(|r| r["case_id"] == ids[8].to_string())
        .unwrap();
    assert_eq!(risky["review_note"], "'=cmd|' /C calc'!A0");
    // The export is in the staff's own trail.
    let exported = env
        .store
        .staff_events(200)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "exported" && e.actor == "staff:rita")
        .count();
    assert!(exported >= 10);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clinics_pages_carry_the_security_headers_and_no_inline_script_or_style() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let ap = account(&env, "ada", Role::Admin).await;
    let case = analysed_case(&env, "mel", &"9a".repeat(32)).await;
    let ada = sign_in(&app, "ada", &ap).await;
    ada.review(&app, case, "mel", "see_a_doctor", "").await;
    let anonymous = http().get(app.url("/admin/sign-in")).send().await.unwrap();
    let mut pages = vec![("/admin/sign-in".to_owned(), anonymous)];
    for path in [
        "/admin/cases".to_owned(),
        format!("/admin/cases/{case}"),
        "/admin/agreement".to_owned(),
        "/admin/users".to_owned(),
        "/admin/cases?status=lost".to_owned(),
    ] {
        pages.push((path.clone(), ada.get(&app, &path).await));
    }
    for (path, response) in pages {
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert_eq!(response.headers()["x-frame-options"], "DENY", "{path}");
        let html = response.text().await.unwrap();
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            assert!(tag.contains(" src="), "{path}: inline script {tag}");
        }
        for attribute in [" onsubmit=", " onclick=", " onload=", " style="] {
            assert!(!html.contains(attribute), "{path}: {attribute}");
        }
        assert!(!html.contains("<style"), "{path}: inline stylesheet");
    }
    // A bad filter is a 422 that says which value, and nothing of the query it would have made.
    let bad = ada.get(&app, "/admin/cases?sort=password_hash").await;
    assert_eq!(bad.status(), 422);
    let text = bad.text().await.unwrap();
    assert!(text.contains("Cannot sort by"), "{text}");
    assert!(!text.contains("SELECT") && !text.contains("ORDER BY"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agreement_page_puts_reviewers_against_the_model_per_version_with_titled_plots() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let rp = account(&env, "rita", Role::Reviewer).await;
    let rita = sign_in(&app, "rita", &rp).await;
    let empty = rita
        .get(&app, "/admin/agreement")
        .await
        .text()
        .await
        .unwrap();
    assert!(empty.contains("id=\"no-reviews\""));
    // Two melanomas the model found; a melanoma it called a naevus; a naevus it agreed on.
    let cases = [("mel", "mel"), ("mel", "mel"), ("nv", "mel"), ("nv", "nv")];
    for (i, (model, reviewer)) in cases.iter().enumerate() {
        let id = analysed_case(&env, model, &format!("{:064x}", i + 500)).await;
        let verdict = if *reviewer == "mel" {
            "see_a_doctor"
        } else {
            "looks_benign"
        };
        rita.review(&app, id, reviewer, verdict, "").await;
    }
    let html = rita
        .get(&app, "/admin/agreement")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-model=\"mole-v1@test\""));
    assert!(
        html.contains("<dd class=\"reviewed-count\">4</dd>"),
        "{html}"
    );
    assert!(html.contains("75.0 % (3 of 4)"), "diagnosis agreement");
    // Malignant per the reviewers: 3, of which the model flagged 2.
    assert!(html.contains("66.7 % — 2 flagged, 1 missed"), "sensitivity");
    assert!(
        html.contains("100.0 % — 1 not flagged, 0 flagged"),
        "specificity"
    );
    assert!(
        html.contains("Reviewers&#39; diagnosis against mole-v1@test")
            || html.contains("Reviewers' diagnosis against mole-v1@test")
            || html.contains("Reviewers&apos; diagnosis against mole-v1@test")
    );
    assert!(
        html.contains("Reviewer&#39;s diagnosis (rows)")
            || html.contains("Reviewer's diagnosis (rows)")
            || html.contains("Reviewer&apos;s diagnosis (rows)")
    );
    assert_eq!(html.matches("<svg width=").count(), 2, "two plots");
    app.stop().await;
}
