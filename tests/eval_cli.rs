//! `mole eval` end to end: the binary on the committed fixture images with the shipped model.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("eval-cli")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    dir
}

#[test]
fn mole_eval_on_the_fixture_writes_metrics_and_a_report_and_prints_the_figures() {
    let out = out_dir("fixture");
    let fixture = repo().join("tests/fixtures/ham10000");
    let output = Command::new(env!("CARGO_BIN_EXE_mole"))
        .args(["eval", "--model"])
        .arg(repo().join(mole_inference::DEFAULT_CARD))
        .arg("--images")
        .arg(&fixture)
        .arg("--labels")
        .arg(fixture.join("labels.csv"))
        .arg("--out")
        .arg(&out)
        .args(["--batch", "4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("balanced accuracy"), "{stdout}");

    let labelled = fs::read_to_string(fixture.join("labels.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .count();
    let metrics: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["n_images"].as_u64().unwrap() as usize, labelled);
    let card: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(repo().join(mole_inference::DEFAULT_CARD)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        metrics["run"]["model_version"],
        format!(
            "{}@{}",
            card["name"].as_str().unwrap(),
            card["version"].as_str().unwrap()
        )
    );
    let ba = metrics["balanced_accuracy"].as_f64().unwrap();
    assert!(
        stdout.contains(&format!("{ba:.4}")),
        "printed figure matches metrics.json"
    );
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("Reliability diagram"));
}

#[test]
fn mole_eval_with_an_unknown_split_fails_with_a_message_instead_of_a_panic() {
    let out = out_dir("bad-split");
    let fixture = repo().join("tests/fixtures/ham10000");
    let split = out_dir("bad-split-input");
    fs::create_dir_all(&split).unwrap();
    fs::write(
        split.join("split.csv"),
        "image_id,split\nISIC_0025314,train\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mole"))
        .args(["eval", "--model"])
        .arg(repo().join(mole_inference::DEFAULT_CARD))
        .arg("--images")
        .arg(&fixture)
        .arg("--labels")
        .arg(fixture.join("labels.csv"))
        .arg("--split")
        .arg(split.join("split.csv"))
        .args(["--split-name", "test", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("split `test` not found") && stderr.contains("train"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.join("report.html").exists());
}
