//! `/model`: the shipped model's card and the Rust evaluator's report of it.

use serde_json::Value;

use crate::common::*;

/// The shipped model's `mole eval` report: `models/report/<model>/` (mole_web's default).
fn report_dir() -> std::path::PathBuf {
    mole_web::model::default_report_dir(&model_path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_page_shows_the_evaluators_figures_for_the_shipped_model() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();

    let metrics: Value = serde_json::from_slice(&read(&report_dir().join("metrics.json"))).unwrap();
    let card: Value = serde_json::from_slice(&read(&model_path())).unwrap();

    let page = client.get(app.url("/model")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let version = format!(
        "{}@{}",
        card["name"].as_str().unwrap(),
        card["version"].as_str().unwrap()
    );
    assert!(html.contains(&version), "model version on the page");
    let sensitivity = metrics["malignant_vs_benign"]["sensitivity"]
        .as_f64()
        .unwrap()
        * 100.0;
    let balanced = metrics["balanced_accuracy"].as_f64().unwrap() * 100.0;
    assert!(
        html.contains(&format!("{sensitivity:.1}%")),
        "sensitivity shown"
    );
    assert!(
        html.contains(&format!("{balanced:.1}%")),
        "balanced accuracy shown"
    );
    for class in card["classes"].as_array().unwrap() {
        let code = class["code"].as_str().unwrap();
        assert!(
            html.contains(&format!("data-code=\"{code}\"")),
            "{code} in the per-class table"
        );
    }
    assert!(html.contains("/model/report"));

    let report = client.get(app.url("/model/report")).send().await.unwrap();
    assert_eq!(report.status(), 200);
    assert!(
        report.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let report_html = report.text().await.unwrap();
    assert_eq!(
        report_html,
        String::from_utf8(read(&report_dir().join("report.html"))).unwrap()
    );

    let served: Value = client
        .get(app.url("/model/card.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, card);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_another_model_is_not_shown_as_this_ones() {
    let env = TestEnv::new().await;
    let dir = std::env::temp_dir().join(format!("mole-report-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut metrics: Value =
        serde_json::from_slice(&read(&report_dir().join("metrics.json"))).unwrap();
    metrics["run"]["onnx_sha256"] = Value::from("0".repeat(64));
    std::fs::write(dir.join("metrics.json"), metrics.to_string()).unwrap();
    std::fs::write(dir.join("report.html"), "<html>another model</html>").unwrap();

    let mut args = env.serve_args();
    args.model_report = Some(dir.clone());
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
    assert!(
        html.contains("id=\"no-report\""),
        "the page says there is no report"
    );
    let report = client.get(app.url("/model/report")).send().await.unwrap();
    assert_eq!(report.status(), 404);
    app.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
