//! `mole refusal` on the committed refusal set and HAM10000 fixtures, with the shipped model card.

use std::fs;
use std::path::{Path, PathBuf};

use mole_eval::refusal::Degradation;
use mole_eval::{EvalError, RefusalOptions, evaluate_refusal, write_refusal};
use mole_inference::BackendKind;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn options() -> RefusalOptions {
    RefusalOptions {
        card: repo().join(mole_inference::DEFAULT_CARD),
        set: repo().join("tests/fixtures/refusal"),
        images: repo().join("tests/fixtures/ham10000"),
        labels: repo().join("tests/fixtures/ham10000/labels.csv"),
        split: None,
        backend: BackendKind::Tract,
        batch: 16,
        threads: 2,
    }
}

#[test]
fn the_shipped_model_refuses_what_is_not_a_usable_lesion_photo_and_judges_lesions() {
    let report = evaluate_refusal(&options()).unwrap();
    assert!(report.unreadable.is_empty(), "{:?}", report.unreadable);
    let group = |name: &str| {
        report
            .groups
            .iter()
            .find(|g| g.group == name)
            .unwrap_or_else(|| panic!("no group {name}"))
    };
    for name in ["photos", "faces", "documents", "synthetic"] {
        let g = group(name);
        assert!(g.n > 0 && g.should_refuse);
        assert!(g.rate() >= 0.95, "{name}: {:.3} ({:?})", g.rate(), g.missed);
    }
    let photos = fs::read_dir(repo().join("tests/fixtures/ham10000"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jpg")
        })
        .count();
    for d in Degradation::ALL {
        let g = group(d.group());
        assert_eq!(g.n, photos);
        assert!(g.rate() >= 0.95, "{}: {:?}", g.group, g.reasons);
    }
    // Each degradation is refused mostly for its own reason.
    for (name, reason) in [
        ("lesion, very dark", "too_dark"),
        ("lesion, overexposed", "overexposed"),
        ("lesion, heavily blurred", "too_blurry"),
        ("lesion, thumbnail", "too_small"),
    ] {
        let g = group(name);
        let most = g
            .reasons
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(r, _)| r.as_str());
        assert_eq!(most, Some(reason), "{name}: {:?}", g.reasons);
    }
    let lesions = group("lesion photos (false refusals)");
    assert!(!lesions.should_refuse);
    assert_eq!(lesions.n, photos);
    assert!(lesions.refused <= 1, "false refusals: {:?}", lesions.missed);

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mole-refusal");
    let _ = fs::remove_dir_all(&out);
    write_refusal(&report, &out).unwrap();
    let md = fs::read_to_string(out.join("refusal.md")).unwrap();
    assert!(md.contains("| photos | yes |") && md.contains("lesion photos (false refusals)"));
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("refusal.json")).unwrap()).unwrap();
    assert_eq!(json["model_version"], report.model_version);
}

#[test]
fn a_card_that_never_refuses_is_an_error_not_a_table_of_zeros() {
    let mut opts = options();
    opts.card = repo().join("models/mole-v1.card.json");
    match evaluate_refusal(&opts) {
        Err(EvalError::Options(message)) => assert!(message.contains("no refusal section")),
        other => panic!("expected an options error, got {other:?}"),
    }
}
