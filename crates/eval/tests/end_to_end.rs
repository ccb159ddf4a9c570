//! The evaluator on the committed HAM10000 fixture images with the shipped model card.
//!
//! `MOLE_TEST_CARD` may point at another card of the same format (e.g. a development model).

use std::fs;
use std::path::{Path, PathBuf};

use mole_eval::{EvalError, EvalOptions, evaluate_directory, report, write_outputs};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn card() -> PathBuf {
    std::env::var_os("MOLE_TEST_CARD")
        .map_or_else(|| repo().join(mole_inference::DEFAULT_CARD), PathBuf::from)
}

fn fixture() -> PathBuf {
    repo().join("tests/fixtures/ham10000")
}

/// A fresh scratch directory under cargo's per-target temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("mole-eval")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture_labels() -> Vec<(String, String)> {
    let text = fs::read_to_string(fixture().join("labels.csv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (id, dx) = l.split_once(',').unwrap();
            (id.trim().to_string(), dx.trim().to_string())
        })
        .collect()
}

fn options(images: &Path, labels: &Path) -> EvalOptions {
    let mut opts = EvalOptions::new(card(), images, labels);
    opts.batch = 8;
    opts.progress = false;
    opts
}

#[test]
fn evaluating_the_fixture_counts_a_missing_and_a_broken_image_and_writes_all_outputs() {
    let dir = scratch("missing-and-broken");
    let images = dir.join("images");
    fs::create_dir_all(&images).unwrap();
    let labels = fixture_labels();
    for (id, _) in &labels {
        fs::copy(
            fixture().join(format!("{id}.jpg")),
            images.join(format!("{id}.jpg")),
        )
        .unwrap();
    }
    fs::write(
        images.join("ISIC_9999998.jpg"),
        b"\xff\xd8\xff\xe0 this is not really a JPEG",
    )
    .unwrap();
    let mut csv = String::from("lesion_id,image_id,dx\n");
    for (id, dx) in &labels {
        csv.push_str(&format!("HAM_x,{id},{dx}\n"));
    }
    csv.push_str("HAM_x,ISIC_9999998,nv\nHAM_x,ISIC_9999999,mel\n");
    let labels_csv = dir.join("metadata.csv");
    fs::write(&labels_csv, csv).unwrap();

    let result = evaluate_directory(&options(&images, &labels_csv)).unwrap();
    let n = labels.len();
    assert_eq!(result.inputs.selected, n + 2);
    assert_eq!(result.inputs.evaluated, n);
    assert_eq!(result.inputs.missing, 1);
    assert_eq!(result.inputs.missing_examples, vec!["ISIC_9999999"]);
    assert_eq!(result.inputs.unreadable, 1);
    assert_eq!(result.inputs.unreadable_examples[0].0, "ISIC_9999998");
    assert_eq!(result.metrics.n_images as usize, n);
    let cm_total: u64 = result.metrics.confusion_matrix.iter().flatten().sum();
    assert_eq!(cm_total as usize, n);
    // Every class of the fixture appears with its labelled support.
    for (i, class) in result.classes.iter().enumerate() {
        let expected = labels.iter().filter(|(_, dx)| *dx == class.code).count() as u64;
        assert_eq!(
            result.metrics.per_class[i].support, expected,
            "{}",
            class.code
        );
    }
    for p in &result.predictions {
        let sum: f32 = p.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{} sums to {sum}", p.image_id);
    }
    assert!(result.gallery.len() <= 12);
    assert!(result.gallery.iter().all(|g| {
        g.thumbnail
            .as_deref()
            .is_some_and(|t| t.starts_with("data:image/jpeg;base64,"))
    }));

    let out = dir.join("out");
    write_outputs(&result, &out).unwrap();
    let metrics: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "balanced_accuracy",
        "accuracy",
        "macro_auc",
        "per_class",
        "confusion_matrix",
        "malignant_vs_benign",
        "calibration",
    ] {
        assert!(metrics.get(key).is_some(), "metrics.json lacks {key}");
    }
    assert_eq!(metrics["n_images"], n);
    assert_eq!(metrics["inputs"]["missing"], 1);
    assert_eq!(metrics["run"]["card_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(metrics["run"]["backend"], "tract");
    let predictions = fs::read_to_string(out.join("predictions.csv")).unwrap();
    assert_eq!(predictions.lines().count(), n + 1);
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains(report::TITLE_CONFUSION_COUNTS) && html.contains(report::TITLE_ROC_MALIGNANT)
    );
    assert!(html.len() < 1_500_000, "report is {} bytes", html.len());
}

#[test]
fn one_hot_labels_and_a_split_file_select_the_same_images_as_categorical_labels() {
    let dir = scratch("one-hot-split");
    let labels = fixture_labels();
    // ISIC ground-truth layout, columns in ISIC's order, not the model's.
    let isic = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"];
    let mut one_hot = format!("image,{}\n", isic.join(","));
    for (id, dx) in &labels {
        let cells: Vec<&str> = isic
            .iter()
            .map(|c| {
                if c.eq_ignore_ascii_case(dx) {
                    "1.0"
                } else {
                    "0.0"
                }
            })
            .collect();
        one_hot.push_str(&format!("{id},{}\n", cells.join(",")));
    }
    let one_hot_csv = dir.join("gt.csv");
    fs::write(&one_hot_csv, one_hot).unwrap();
    // Every other image goes to "test".
    let mut split = String::from("image_id,split\n");
    let mut chosen = Vec::new();
    for (i, (id, _)) in labels.iter().enumerate() {
        let name = if i % 2 == 0 { "test" } else { "train" };
        if name == "test" {
            chosen.push(id.clone());
        }
        split.push_str(&format!("{id},{name}\n"));
    }
    let split_csv = dir.join("split.csv");
    fs::write(&split_csv, split).unwrap();

    let mut opts = options(&fixture(), &one_hot_csv);
    opts.split = Some((split_csv, "test".into()));
    let from_one_hot = evaluate_directory(&opts).unwrap();
    let ids: Vec<&str> = from_one_hot
        .predictions
        .iter()
        .map(|p| p.image_id.as_str())
        .collect();
    assert_eq!(ids, chosen);

    let mut opts = options(&fixture(), &fixture().join("labels.csv"));
    opts.split = from_one_hot
        .run
        .split
        .as_ref()
        .map(|s| (PathBuf::from(&s.file), s.name.clone()));
    let from_categorical = evaluate_directory(&opts).unwrap();
    assert_eq!(from_categorical.metrics, from_one_hot.metrics);
}

#[test]
fn a_run_where_no_image_can_be_found_fails_with_a_count() {
    let dir = scratch("nothing");
    let labels_csv = dir.join("labels.csv");
    fs::write(
        &labels_csv,
        "image_id,dx\nISIC_0000000,nv\nISIC_0000001,mel\n",
    )
    .unwrap();
    let err = evaluate_directory(&options(&fixture(), &labels_csv)).unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::NothingEvaluated {
                selected: 2,
                missing: 2,
                unreadable: 0
            }
        ),
        "{err}"
    );
}

#[test]
fn limit_takes_the_first_rows_of_the_label_file() {
    let mut opts = options(&fixture(), &fixture().join("labels.csv"));
    opts.limit = Some(5);
    let result = evaluate_directory(&opts).unwrap();
    let expected: Vec<String> = fixture_labels()
        .into_iter()
        .take(5)
        .map(|(id, _)| id)
        .collect();
    let got: Vec<String> = result
        .predictions
        .iter()
        .map(|p| p.image_id.clone())
        .collect();
    assert_eq!(got, expected);
}
