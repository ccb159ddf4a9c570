//! The person's pages in English, French and Dutch: chosen by `Accept-Language`, by the page's
//! switch (`?lang=`, remembered in a cookie), and said everywhere (pages, live panel, JSON, error
//! pages, a refused upload), with no English sentence left on a French or Dutch page.

use std::collections::HashMap;

use uuid::Uuid;

use crate::common::*;

/// The single-line messages of a language's catalogue, by id.
fn catalogue(lang: &str) -> HashMap<String, String> {
    let text = String::from_utf8(read(&root().join(format!("locales/{lang}/mole.ftl")))).unwrap();
    text.lines()
        .filter(|l| !l.starts_with([' ', '#']))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// English sentences of the catalogue (four words or more, no argument) that must not show on a
/// page in another language.
fn english_sentences() -> Vec<String> {
    let french = catalogue("fr");
    catalogue("en")
        .into_iter()
        .filter(|(id, v)| {
            !v.contains('{')
                && v.split_whitespace().count() >= 4
                && !id.starts_with("dx-")
                && french.get(id) != Some(v)
        })
        .map(|(_, v)| v)
        .collect()
}

async fn page(app: &App, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = http().get(app.url(path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn assert_in_language(html: &str, lang: &str, what: &str, english: &[String]) {
    assert!(
        html.contains(&format!("<html lang=\"{lang}\">")),
        "{what}: not marked {lang}"
    );
    assert!(!html.contains('⟦'), "{what}: a message is missing: {html}");
    if lang != "en" {
        for sentence in english {
            // As askama escapes it, and as the catalogue's HTML messages do.
            let askama = sentence.replace('\'', "&#39;").replace('"', "&#34;");
            let ours = sentence.replace('\'', "&#x27;").replace('"', "&quot;");
            assert!(
                !html.contains(sentence.as_str())
                    && !html.contains(&askama)
                    && !html.contains(&ours),
                "{what} in {lang} still says {sentence:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_the_person_speaks_the_language_the_browser_asks_for() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let worker = InProcessWorker::spawn(env.worker_args());
    let cookie = browser_cookie(&app).await;
    let send = |fixture: std::path::PathBuf| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            let response =
                upload(&http(), app, "photo", read(&fixture), Some(&cookie), false).await;
            redirected_case(&response)
        }
    };
    let done = send(fixture_images()[0].clone()).await;
    let refused = send(root().join("tests/fixtures/refusal/documents/page.png")).await;
    wait_final(&http(), &app, done).await;
    wait_final(&http(), &app, refused).await;
    let english = english_sentences();
    assert!(english.len() > 50, "the check covers the catalogue");

    for (lang, accept, title) in [
        ("en", "en-GB,en;q=0.9", "Check a mole"),
        (
            "fr",
            "fr-BE,fr;q=0.9,en;q=0.5",
            "Vérifier un grain de beauté",
        ),
        (
            "nl",
            "nl-NL,nl;q=0.9,en;q=0.5",
            "Een moedervlek laten nakijken",
        ),
    ] {
        let headers = [("accept-language", accept), ("cookie", cookie.as_str())];
        let (status, front) = page(&app, "/", &headers).await;
        assert_eq!(status, 200);
        assert!(front.contains(title), "{lang}: {title:?}");
        assert_in_language(&front, lang, "/", &english);
        for path in [
            format!("/cases/{done}"),
            format!("/cases/{refused}"),
            "/my-cases".to_owned(),
            "/model".to_owned(),
        ] {
            let (status, html) = page(&app, &path, &headers).await;
            assert_eq!(status, 200, "{lang} {path}");
            assert_in_language(&html, lang, &path, &english);
        }
        // An error page and a refused upload, in the same language.
        let (status, html) = page(&app, &format!("/cases/{}", Uuid::new_v4()), &headers).await;
        assert_eq!(status, 404);
        assert_in_language(&html, lang, "404", &english);
        let response = http()
            .post(app.url("/cases"))
            .header("accept-language", accept)
            .multipart(reqwest::multipart::Form::new().part(
                "photo",
                reqwest::multipart::Part::bytes(b"just some text".to_vec()).file_name("note.txt"),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 415);
        let html = response.text().await.unwrap();
        assert_in_language(&html, lang, "a refused upload", &english);
        let expected = catalogue(lang)["error-not-an-image"].replace('\'', "&#39;");
        assert!(html.contains(&expected), "{lang}: {expected:?} in {html}");
        // The JSON speaks it too; its codes do not change.
        let json: serde_json::Value = http()
            .get(app.url(&format!("/api/cases/{refused}")))
            .header("accept-language", accept)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(json["refusal"]["reason"], "not_a_lesion");
        assert_eq!(
            json["refusal"]["message"],
            catalogue(lang)["refusal-not-a-lesion"].as_str()
        );
    }
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_on_the_page_wins_over_the_browser_and_is_remembered() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let response = http()
        .get(app.url("/?lang=nl"))
        .header("accept-language", "fr")
        .send()
        .await
        .unwrap();
    let set: Vec<_> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let lang_cookie = set
        .iter()
        .find(|c| c.starts_with("mole_lang="))
        .expect("the choice is remembered")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(lang_cookie, "mole_lang=nl");
    let html = response.text().await.unwrap();
    assert!(html.contains("<html lang=\"nl\">"));
    // The switch offers the others, each in its own language.
    assert!(html.contains("href=\"?lang=fr\"") && html.contains(">Français<"));
    assert!(html.contains("aria-current=\"true\" lang=\"nl\">Nederlands<"));

    // Later pages keep it, whatever the browser's own preference.
    let (_, html) = page(
        &app,
        "/model",
        &[("accept-language", "fr"), ("cookie", lang_cookie.as_str())],
    )
    .await;
    assert!(html.contains("<html lang=\"nl\">"));
    // A language the catalogue lacks is ignored (English, nothing remembered).
    let response = http().get(app.url("/?lang=xx")).send().await.unwrap();
    assert!(
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("mole_lang="))
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("<html lang=\"en\">")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_sends_the_panel_in_the_language_of_its_page() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let id = upload_case(&http(), &app, "lesion.jpg", read(&fixture_images()[1])).await;
    for (accept, waiting) in [
        ("fr", catalogue("fr")["status-queued"].clone()),
        ("nl", catalogue("nl")["status-queued"].clone()),
        ("en", catalogue("en")["status-queued"].clone()),
    ] {
        let mut response = http()
            .get(app.url(&format!("/cases/{id}/events")))
            .header("accept-language", accept)
            .send()
            .await
            .unwrap();
        let mut seen = String::new();
        while !seen.contains("\n\n") {
            let chunk = tokio::time::timeout(PATIENCE, response.chunk())
                .await
                .expect("an event")
                .unwrap()
                .expect("the stream stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(seen.contains(&waiting), "{accept}: {waiting:?} in {seen}");
    }
    app.stop().await;
}
