//! mole-inference: image bytes → tensor → calibrated HAM10000 probabilities.
//!
//! A pure library (no async runtime, no HTTP, no database) shared by the worker, the web
//! service (decode / EXIF handling) and the evaluator:
//!
//! ```no_run
//! use mole_inference::{Classifier, ClassifierConfig};
//! # fn main() -> Result<(), mole_inference::InferenceError> {
//! let classifier = Classifier::load("models/mole-v2.card.json".as_ref(), ClassifierConfig::default())?;
//! let image = classifier.preprocess(&std::fs::read("lesion.jpg").unwrap())?;
//! let prediction = &classifier.predict(&[image])?[0];
//! println!("{:?} (P(malignant) = {:.2})", prediction.verdict, prediction.p_malignant);
//! # Ok(()) }
//! ```
//!
//! Backends: tract-onnx (default) and onnxruntime behind the crate feature `ort`
//! (set `ORT_DYLIB_PATH` to `libonnxruntime.so`, or pass `ClassifierConfig::ort_library`).

pub mod backend;
mod bands;
pub mod bench;
pub mod card;
pub mod classifier;
pub mod decode;
pub mod error;
pub mod jpeg;
pub mod preprocess;
pub mod strip;

pub use backend::tract::{TractOptions, TractParallelism, TractPlans};
pub use backend::{Backend, BackendKind};
pub use card::{ModelCard, RefusalSpec};

/// The shipped model card every command and test uses unless told otherwise, relative to the
/// workspace root (where `mole` runs from).
pub const DEFAULT_CARD: &str = "models/mole-v2.card.json";

/// Where the shipped model card is when none is named: [`DEFAULT_CARD`] under the working
/// directory when it is there (the repository, the Docker image, a Heroku slug), else beside the
/// running executable, or where a cargo build of the repository puts it (`target/<profile>/mole`
/// under the repository): so that `mole` started from any directory finds its model.
pub fn default_card() -> std::path::PathBuf {
    let relative = std::path::Path::new(DEFAULT_CARD);
    if relative.is_file() {
        return relative.to_owned();
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .and_then(|exe| exe.parent().map(std::path::Path::to_owned));
    if let Some(dir) = exe_dir {
        for base in dir.ancestors().take(4) {
            let candidate = base.join(DEFAULT_CARD);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    relative.to_owned()
}
pub use classifier::{
    Classifier, ClassifierConfig, MapProgress, OcclusionMap, PhotoSignals, Prediction,
    Preprocessed, RefusalReason, Verdict, calibrated_softmax,
};
pub use decode::{DecodeLimits, decode_image, sniff_format};
pub use error::InferenceError;
