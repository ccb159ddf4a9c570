//! In a real browser (headless Chromium driven through chromedriver): upload a lesion photo and
//! see the verdict appear on the case page without reloading it, also when the web process
//! restarts while the page waits (the page's stream resumes).
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`);
//! `CHROMEDRIVER` and `CHROME` override their paths.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::common::*;

struct Driver {
    child: Child,
    url: String,
    _profile: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_chromedriver() -> Driver {
    let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
    let port = free_port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {binary} ({e}); install chromium and chromium-driver")
        });
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: TempDir::new("chrome"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/status", driver.url)).await
            && r.status().is_success()
        {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A headless Chromium session through a fresh chromedriver (both end when dropped/closed).
async fn browser() -> (Driver, fantoccini::Client) {
    let driver = start_chromedriver().await;
    let mut options = json!({
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage",
            format!("--user-data-dir={}", driver._profile.0.display()),
        ]
    });
    if let Ok(chrome) = std::env::var("CHROME") {
        options["binary"] = json!(chrome);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_owned(), options);
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session");
    (driver, browser)
}

/// Chooses `photo` in the upload form's one photo input and sends it.
async fn send_photo(
    browser: &fantoccini::Client,
    photo: &std::path::Path,
) -> Result<(), fantoccini::error::CmdError> {
    browser
        .find(Locator::Id("photo"))
        .await?
        .send_keys(&photo.display().to_string())
        .await?;
    browser.find(Locator::Id("submit")).await?.click().await
}

/// Prints what the browser showed when a step failed, then closes it.
async fn finish(browser: fantoccini::Client, outcome: &Result<(), fantoccini::error::CmdError>) {
    if outcome.is_err() {
        let url = browser.current_url().await.map(|u| u.to_string());
        let source = browser.source().await.unwrap_or_default();
        eprintln!("browser at {url:?}:\n{source}");
    }
    let _ = browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_a_real_browser_an_uploaded_photo_shows_its_verdict_without_a_reload() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let (_driver, browser) = browser().await;

    let outcome = async {
        browser.goto(&app.url("/")).await?;
        let photo = fixture_images().remove(4);
        send_photo(&browser, &photo).await?;

        // The case page, still waiting: no worker runs yet.
        let status = browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("status-text"))
            .await?;
        assert!(!status.text().await?.is_empty());
        assert!(browser.current_url().await?.path().starts_with("/cases/"));
        // A mark that a reload would wipe out.
        browser
            .execute("window.__stayed = true; return true;", vec![])
            .await?;

        let worker = InProcessWorker::spawn(env.worker_args());
        let verdict = browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("verdict"))
            .await?;
        let text = verdict.text().await?;
        assert!(
            text.contains("doctor") || text.contains("benign"),
            "verdict in plain words: {text:?}"
        );
        let stayed = browser
            .execute("return window.__stayed === true;", vec![])
            .await?;
        assert_eq!(stayed, json!(true), "the page was reloaded");
        let rows = browser.find_all(Locator::Css("#diagnoses tr")).await?;
        assert_eq!(rows.len(), 7, "seven diagnoses in the chart");
        let page = browser.source().await?;
        assert!(page.contains("not a medical diagnosis"));
        worker.stop().await.unwrap();
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    finish(browser, &outcome).await;
    outcome.expect("browser steps");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_a_real_browser_a_picture_that_is_not_a_lesion_says_why_and_what_to_do_with_no_diagnosis()
 {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let worker = InProcessWorker::spawn(env.worker_args());
    let (_driver, browser) = browser().await;

    let outcome = async {
        browser.goto(&app.url("/")).await?;
        let picture = root().join("tests/fixtures/refusal/documents/page.png");
        send_photo(&browser, &picture).await?;

        let refusal = browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("refusal"))
            .await?;
        let why = refusal.text().await?;
        assert!(why.contains("skin lesion"), "the reason in words: {why:?}");
        let advice = browser
            .find(Locator::Id("refusal-advice"))
            .await?
            .text()
            .await?;
        assert!(
            advice.contains("Photograph only the spot"),
            "advice: {advice:?}"
        );
        assert!(browser.find(Locator::Id("try-again")).await.is_ok());
        // No diagnosis anywhere on the page.
        for id in ["verdict", "diagnoses", "p-malignant"] {
            assert!(
                browser.find_all(Locator::Id(id)).await?.is_empty(),
                "#{id} on a refused photo's page"
            );
        }
        let text = browser.find(Locator::Css("body")).await?.text().await?;
        assert!(!text.contains("Melanoma"), "a diagnosis name on the page");
        assert!(text.contains("not a medical device"));
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    finish(browser, &outcome).await;
    outcome.expect("browser steps");
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_a_real_browser_the_verdict_arrives_on_a_stream_that_resumed_after_a_web_restart() {
    let env = TestEnv::new().await;
    let port = free_port();
    let web = WebProcess::spawn(&env, port, &[]).await;
    let (_driver, browser) = browser().await;

    let outcome = async {
        browser.goto(&web.url("/")).await?;
        let photo = fixture_images().remove(9);
        send_photo(&browser, &photo).await?;
        browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("status-text"))
            .await?;
        browser
            .execute("window.__stayed = true; return true;", vec![])
            .await?;
        let live = browser
            .execute("return document.body.getAttribute('data-live');", vec![])
            .await?;
        assert_eq!(live, json!("stream"), "the page follows the event stream");

        // The web process restarts (SIGTERM, as a deploy does) while the page waits, then a
        // worker analyses the photo: the browser reconnects its stream to the new process.
        web.terminate();
        let web = WebProcess::spawn(&env, port, &[]).await;
        let worker = InProcessWorker::spawn(env.worker_args());
        let verdict = browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("verdict"))
            .await?;
        assert!(!verdict.text().await?.is_empty());
        let stayed = browser
            .execute("return window.__stayed === true;", vec![])
            .await?;
        assert_eq!(stayed, json!(true), "the page was reloaded");
        let live = browser
            .execute("return document.body.getAttribute('data-live');", vec![])
            .await?;
        assert_eq!(
            live,
            json!("stream"),
            "the stream resumed (no fallback to polling)"
        );
        worker.stop().await.unwrap();
        drop(web);
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    finish(browser, &outcome).await;
    outcome.expect("browser steps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_a_real_browser_staff_sign_in_filter_review_a_case_and_see_it_reviewed_and_the_agreement_updated()
 {
    use mole_storage::{NewReview, Role};
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let password = crate::admin::account(&env, "rita", Role::Reviewer).await;
    let rita = env
        .store
        .account_by_username("rita")
        .await
        .unwrap()
        .unwrap();
    let melanoma = crate::admin::analysed_case(&env, "mel", &"aa".repeat(32)).await;
    let naevus = crate::admin::analysed_case(&env, "nv", &"bb".repeat(32)).await;
    // One case was reviewed before: the filter has something to leave out.
    env.store
        .add_review(&NewReview {
            case_id: naevus,
            reviewer: rita.id,
            reviewer_name: "rita".to_owned(),
            diagnosis: "nv".to_owned(),
            verdict: "looks_benign".to_owned(),
            note: None,
            request_id: None,
        })
        .await
        .unwrap();
    let (_driver, browser) = browser().await;

    let outcome = async {
        // Not signed in: the list sends the browser to the sign-in page.
        browser.goto(&app.url("/admin/cases")).await?;
        browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("sign-in-form"))
            .await?;
        browser
            .find(Locator::Id("username"))
            .await?
            .send_keys("rita")
            .await?;
        browser
            .find(Locator::Id("password"))
            .await?
            .send_keys(&password)
            .await?;
        browser.find(Locator::Id("sign-in")).await?.click().await?;
        browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("filters"))
            .await?;
        assert_eq!(browser.current_url().await?.path(), "/admin/cases");

        // The agreement page before: one reviewed case.
        browser.goto(&app.url("/admin/agreement")).await?;
        let count = browser.find(Locator::Css(".reviewed-count")).await?;
        assert_eq!(count.text().await?, "1");

        // Filter: the cases waiting for a review.
        browser.goto(&app.url("/admin/cases")).await?;
        browser
            .find(Locator::Id("f-reviewed"))
            .await?
            .select_by_value("no")
            .await?;
        browser
            .find(Locator::Id("apply-filters"))
            .await?
            .click()
            .await?;
        browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css("#f-reviewed option[value='no'][selected]"))
            .await?;
        let rows = browser.find_all(Locator::Css("#cases tbody tr")).await?;
        assert_eq!(rows.len(), 1, "only the case waiting for review");
        assert_eq!(
            rows[0].attr("data-case-id").await?,
            Some(melanoma.to_string())
        );

        // Review it: the model's melanoma confirmed, see a doctor, a note.
        browser
            .find(Locator::Css(&format!("tr[data-case-id='{melanoma}'] a")))
            .await?
            .click()
            .await?;
        browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("review-form"))
            .await?;
        assert!(browser.find(Locator::Id("photo")).await.is_ok());
        browser
            .find(Locator::Id("r-diagnosis"))
            .await?
            .select_by_value("mel")
            .await?;
        browser
            .find(Locator::Id("r-verdict-see_a_doctor"))
            .await?
            .click()
            .await?;
        browser
            .find(Locator::Id("r-note"))
            .await?
            .send_keys("asymmetric, two colours")
            .await?;
        browser.find(Locator::Id("r-submit")).await?.click().await?;
        let saved = browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("saved"))
            .await?;
        assert!(saved.text().await?.contains("Review recorded"));
        let history = browser.find(Locator::Id("history")).await?.text().await?;
        assert!(history.contains("reviewed") && history.contains("staff:rita"));

        // The list marks it reviewed.
        browser.goto(&app.url("/admin/cases")).await?;
        let row = browser
            .find(Locator::Css(&format!("tr[data-case-id='{melanoma}']")))
            .await?;
        assert_eq!(row.attr("data-reviewed").await?, Some("yes".to_owned()));
        assert!(row.text().await?.contains("reviewed"));

        // The agreement page counts it.
        browser.goto(&app.url("/admin/agreement")).await?;
        let count = browser.find(Locator::Css(".reviewed-count")).await?;
        assert_eq!(count.text().await?, "2");
        let sensitivity = browser.find(Locator::Css(".sensitivity")).await?;
        assert!(sensitivity.text().await?.starts_with("100.0 %"));
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    finish(browser, &outcome).await;
    outcome.expect("browser steps");
    app.stop().await;
}

/// Whether the page scrolls sideways (wider than the window); prints what sticks out when it does.
async fn scrolls_sideways(
    browser: &fantoccini::Client,
) -> Result<bool, fantoccini::error::CmdError> {
    let v = browser
        .execute(
            "var e = document.documentElement; \
             var wide = Math.max(e.scrollWidth, document.body.scrollWidth) > e.clientWidth; \
             if (!wide) return []; \
             var out = ['window ' + window.innerWidth + ', page ' + e.scrollWidth]; \
             document.querySelectorAll('body *').forEach(function (n) { \
               var r = n.getBoundingClientRect(); \
               if (r.right > e.clientWidth + 1) out.push(n.tagName + '#' + n.id + '.' + n.className + ' ' + Math.round(r.right)); \
             }); \
             return out.slice(0, 12);",
            vec![],
        )
        .await?;
    let out: Vec<String> = serde_json::from_value(v).unwrap_or_default();
    if !out.is_empty() {
        eprintln!("sticking out: {out:?}");
    }
    Ok(!out.is_empty())
}

/// With `MOLE_SCREENSHOTS=<dir>`, saves what the browser shows as `<dir>/<name>.png` (full page,
/// for looking at the pages by eye).
async fn screenshot(browser: &fantoccini::Client, name: &str) {
    let Some(dir) = std::env::var_os("MOLE_SCREENSHOTS") else {
        return;
    };
    let height = browser
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .ok()
        .and_then(|v| v.as_u64())
        .unwrap_or(844);
    let size = browser.get_window_size().await.ok();
    if let Some((w, _)) = size {
        let _ = browser
            .set_window_size(w as u32, height.clamp(844, 6000) as u32)
            .await;
    }
    if let Ok(png) = browser.screenshot().await {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png);
    }
    if let Some((w, h)) = size {
        let _ = browser.set_window_size(w as u32, h as u32).await;
    }
}

/// axe-core's serious and critical WCAG 2.1 A/AA violations on the current page, one line each.
/// axe-core is installed by `scripts/test` (`npm ci --prefix tests/a11y`). Fails when axe ran no
/// rule at all (so a checker that did not run cannot pass).
async fn accessibility_violations(
    browser: &fantoccini::Client,
) -> Result<Vec<String>, fantoccini::error::CmdError> {
    let path = root().join("tests/a11y/node_modules/axe-core/axe.min.js");
    let axe = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; install it with `npm ci --prefix tests/a11y` (scripts/test does)",
            path.display()
        )
    });
    browser
        .execute(&format!("{axe}\nreturn typeof axe;"), vec![])
        .await?;
    let found = browser
        .execute_async(
            "var done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag',
                 values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
               .then(function (r) {
                 if (r.passes.length === 0) { done(['axe ran no rule']); return; }
                 done(r.violations
                   .filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                   .map(function (v) {
                     return v.impact + ' ' + v.id + ': ' + v.help + ' at ' +
                       v.nodes.map(function (n) { return n.target.join(' '); }).join(', ');
                   }));
               })
               .catch(function (e) { done(['axe failed: ' + e]); });",
            vec![],
        )
        .await?;
    Ok(serde_json::from_value(found).expect("a list of strings"))
}

/// Waits until `script` (a function body) returns true.
async fn until(
    browser: &fantoccini::Client,
    what: &str,
    within: Duration,
    script: &str,
) -> Result<(), fantoccini::error::CmdError> {
    let deadline = Instant::now() + within;
    loop {
        if browser.execute(script, vec![]).await? == json!(true) {
            return Ok(());
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_a_real_browser_on_a_phone_screen_a_person_previews_sends_waits_honestly_reads_the_verdict_and_finds_the_case_again()
 {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let (_driver, browser) = browser().await;

    let outcome = async {
        browser.set_window_size(390, 844).await?;
        browser.goto(&app.url("/")).await?;
        let width = browser.execute("return window.innerWidth;", vec![]).await?;
        assert!(
            width.as_u64().is_some_and(|w| w <= 400),
            "a phone-sized window: {width}"
        );
        assert!(!scrolls_sideways(&browser).await?, "/ scrolls sideways");
        let violations = accessibility_violations(&browser).await?;
        assert!(violations.is_empty(), "/: {violations:#?}");
        screenshot(&browser, "front").await;
        // Both checks can fail: an unlabelled field and a too-wide block are caught.
        browser
            .execute(
                "var i = document.createElement('input'); i.type = 'text'; \
                 document.querySelector('main').appendChild(i); \
                 var d = document.createElement('div'); \
                 d.appendChild(document.createTextNode('x'.repeat(400))); \
                 d.className = 'canary'; document.querySelector('main').appendChild(d); \
                 document.querySelector('main').style.overflowWrap = 'normal'; return true;",
                vec![],
            )
            .await?;
        let caught = accessibility_violations(&browser).await?;
        assert!(
            caught.iter().any(|v| v.contains(" label:")),
            "axe missed an unlabelled field: {caught:?}"
        );
        assert!(scrolls_sideways(&browser).await?, "a 400-character word did not scroll");
        browser.refresh().await?;

        // One photo input; the chosen photo is previewed before it is sent.
        assert_eq!(
            browser.find_all(Locator::Css("input[type=file]")).await?.len(),
            1
        );
        let photo = fixture_images().remove(2);
        browser
            .find(Locator::Id("photo"))
            .await?
            .send_keys(&photo.display().to_string())
            .await?;
        until(
            &browser,
            "the preview",
            PATIENCE,
            "var p = document.getElementById('preview'), i = document.getElementById('preview-img'); \
             return !p.hidden && i.complete && i.naturalWidth > 0;",
        )
        .await?;
        let submit = browser.find(Locator::Id("submit")).await?;
        assert_eq!(submit.text().await?, "Use this photo");
        assert!(
            browser
                .find(Locator::Id("choose-another"))
                .await?
                .is_displayed()
                .await?
        );
        submit.click().await?;

        // No worker yet: within 10 s the page says the analysis is delayed and the photo safe.
        browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("status-text"))
            .await?;
        let case_path = browser.current_url().await?.path().to_owned();
        let case_id = case_path.trim_start_matches("/cases/").to_owned();
        until(
            &browser,
            "the delayed notice",
            Duration::from_secs(10),
            "var w = document.getElementById('wait'); \
             return !!w && !w.hidden && w.getAttribute('data-delayed') === 'true';",
        )
        .await?;
        let wait = browser.find(Locator::Id("wait")).await?.text().await?;
        assert!(
            wait.contains("delayed") && wait.contains("stored safely"),
            "{wait:?}"
        );
        let history = browser.find(Locator::Id("history")).await?.text().await?;
        assert!(history.contains("You sent the photo."), "{history:?}");
        assert!(!history.contains("uploader:"), "an actor code: {history:?}");
        assert!(!scrolls_sideways(&browser).await?, "the waiting page scrolls sideways");
        screenshot(&browser, "waiting").await;
        let violations = accessibility_violations(&browser).await?;
        assert!(violations.is_empty(), "waiting case page: {violations:#?}");

        // A worker comes: the verdict, the way forward and the history arrive without a reload.
        let worker = InProcessWorker::spawn(env.worker_args());
        browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("verdict"))
            .await?;
        until(
            &browser,
            "the live history",
            PATIENCE,
            "var h = document.getElementById('history'); \
             return !!h && h.textContent.indexOf('The model analysed it.') >= 0;",
        )
        .await?;
        let wait_hidden = browser
            .execute("var w = document.getElementById('wait'); return !w || w.hidden;", vec![])
            .await?;
        assert_eq!(wait_hidden, json!(true), "the wait notice stays after the result");
        let advice = browser.find(Locator::Id("advice")).await?.text().await?;
        assert!(
            advice.contains("two weeks") || advice.contains("ABCDE"),
            "advice: {advice:?}"
        );
        assert!(browser.find(Locator::Id("print")).await?.is_displayed().await?);
        assert!(!scrolls_sideways(&browser).await?, "the result page scrolls sideways");
        screenshot(&browser, "result").await;
        let violations = accessibility_violations(&browser).await?;
        assert!(violations.is_empty(), "case page with its result: {violations:#?}");

        // The way forward: check another photo; the first case is under "my cases".
        browser.find(Locator::Id("check-another")).await?.click().await?;
        browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("upload-form"))
            .await?;
        assert_eq!(browser.current_url().await?.path(), "/");
        browser.find(Locator::Id("nav-my-cases")).await?.click().await?;
        let mine = browser
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(&format!("li.my-case[data-case-id='{case_id}']")))
            .await?;
        let line = mine.text().await?;
        assert!(
            line.contains("See a doctor") || line.contains("Looks benign"),
            "{line:?}"
        );
        assert!(!scrolls_sideways(&browser).await?, "my cases scrolls sideways");
        screenshot(&browser, "my-cases").await;

        // The model's pages fit too, the report included.
        browser.goto(&app.url("/model")).await?;
        assert!(!scrolls_sideways(&browser).await?, "/model scrolls sideways");
        screenshot(&browser, "model").await;
        let violations = accessibility_violations(&browser).await?;
        assert!(violations.is_empty(), "/model: {violations:#?}");
        browser.goto(&app.url("/model/report")).await?;
        assert!(!scrolls_sideways(&browser).await?, "the report scrolls sideways");
        screenshot(&browser, "report").await;

        // The narrowest phones (320 px) too, in every language (French and Dutch run longer).
        browser.set_window_size(320, 700).await?;
        for lang in ["en", "fr", "nl"] {
            for path in [
                "/".to_owned(),
                case_path.clone(),
                "/my-cases".to_owned(),
                "/model".to_owned(),
                "/model/report".to_owned(),
            ] {
                browser.goto(&app.url(&format!("{path}?lang={lang}"))).await?;
                assert!(
                    !scrolls_sideways(&browser).await?,
                    "{path} in {lang} scrolls sideways at 320 px"
                );
            }
        }
        worker.stop().await.unwrap();
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    finish(browser, &outcome).await;
    outcome.expect("browser steps");
    app.stop().await;
}
