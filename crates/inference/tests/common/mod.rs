//! Helpers shared by the tests that need the model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace root (where `models/` and `tests/fixtures/` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The shipped model card, or the one named by `MOLE_TEST_CARD`.
pub fn card_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MOLE_TEST_CARD") {
        return PathBuf::from(path);
    }
    let path = workspace_root().join(mole_inference::DEFAULT_CARD);
    assert!(
        path.exists(),
        "{} is missing: the model is part of the repository (set MOLE_TEST_CARD to test another card)",
        path.display()
    );
    path
}

/// The onnxruntime library for the `ort` tests: `ORT_DYLIB_PATH`, which must be set.
pub fn ort_library() -> PathBuf {
    PathBuf::from(std::env::var_os("ORT_DYLIB_PATH").expect(
        "the ort tests need ORT_DYLIB_PATH pointing at libonnxruntime.so (e.g. from the onnxruntime wheel)",
    ))
}

/// A fresh empty folder under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mole-inference-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a copy of the test card, edited by `edit`, that points at the real ONNX file by absolute path.
pub fn edited_card(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let original = card_path();
    let mut card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&original).unwrap()).unwrap();
    let onnx = original
        .parent()
        .unwrap()
        .join(card["onnx_file"].as_str().unwrap());
    card["onnx_file"] =
        serde_json::Value::String(onnx.canonicalize().unwrap().display().to_string());
    edit(&mut card);
    let path = temp_dir(name).join("card.json");
    std::fs::write(&path, serde_json::to_string_pretty(&card).unwrap()).unwrap();
    path
}
