//! mole-eval: measures a model card against labelled images and writes `metrics.json`,
//! `predictions.csv` and a self-contained `report.html`.
//!
//! The layers, from pure to effectful:
//! - [`metrics`]: figures from `(true class, probabilities)` pairs — no files, no model;
//! - [`labels`]: the label CSV formats (HAM10000 `metadata.csv`, ISIC one-hot) and split files;
//! - [`report`]: `EvalResult` → HTML with inline SVG plots ([`report::render_html`]), also used by
//!   the web service to show the shipped model's report;
//! - [`run`]: loads a [`mole_inference::Classifier`], classifies a directory of images and builds
//!   the [`EvalResult`];
//! - [`refusal`]: how often the model refuses pictures that are not (usable) lesion photos, and
//!   lesion photos it should judge (`mole refusal`).

pub mod base64;
pub mod labels;
pub mod metrics;
pub mod plots;
pub mod refusal;
pub mod report;
pub mod run;

use serde::{Deserialize, Serialize};

pub use labels::{LabelError, LabelFormat};
pub use metrics::{ClassInfo, Metrics, MetricsError, Sample};
pub use refusal::{RefusalOptions, RefusalReport, evaluate_refusal, write_refusal};
pub use run::{EvalError, EvalOptions, evaluate_directory, write_outputs};

/// How, on what and with which model an evaluation ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Model card `name`.
    pub model_name: String,
    /// `name@version` of the model.
    pub model_version: String,
    /// Path of the model card as given.
    pub card_path: String,
    /// sha256 of the model card file.
    pub card_sha256: String,
    /// sha256 of the ONNX file, as recorded in (and checked against) the card.
    pub onnx_sha256: String,
    /// Backend that ran the model (`tract` / `onnxruntime`).
    pub backend: String,
    /// Whether test-time augmentation was on.
    pub tta: bool,
    /// Images per forward pass.
    pub batch: usize,
    /// Image directory as given.
    pub images_dir: String,
    /// Label CSV as given.
    pub labels_csv: String,
    /// Format the label CSV was read as.
    pub label_format: LabelFormat,
    /// The split file and split name, when rows were restricted to one split.
    pub split: Option<SplitInfo>,
    /// `--limit`, when given.
    pub limit: Option<usize>,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// Wall-clock seconds from loading the model to the last prediction.
    pub wall_seconds: f64,
    /// Version of mole-eval that measured.
    pub evaluator_version: String,
}

/// The split an evaluation was restricted to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// Path of the split CSV as given.
    pub file: String,
    /// The split name, e.g. `test`.
    pub name: String,
}

/// What happened to the labelled rows.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InputCounts {
    /// Distinct images in the label CSV.
    pub labelled: usize,
    /// Repeated rows in the label CSV (same image, same label).
    pub duplicate_label_rows: usize,
    /// Images of the split that have no label row.
    pub split_without_label: usize,
    /// Images selected for evaluation (after split and limit).
    pub selected: usize,
    /// Images classified and counted in the metrics.
    pub evaluated: usize,
    /// Selected images with no `<id>.jpg|.jpeg|.png` in the image directory.
    pub missing: usize,
    /// Selected images that could not be read or decoded.
    pub unreadable: usize,
    /// Up to 20 missing image ids, for the report.
    pub missing_examples: Vec<String>,
    /// Up to 20 `(image id, reason)` pairs of unreadable images.
    pub unreadable_examples: Vec<(String, String)>,
}

/// The model's output for one evaluated image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePrediction {
    /// Image id.
    pub image_id: String,
    /// Index of the true class.
    pub true_class: usize,
    /// Calibrated probabilities in class order.
    pub probabilities: Vec<f32>,
    /// P(malignant) as the classifier computed it.
    pub p_malignant: f32,
}

impl ImagePrediction {
    /// The pure-metrics view of this prediction.
    pub fn sample(&self) -> Sample {
        Sample {
            true_class: self.true_class,
            probabilities: self.probabilities.clone(),
            p_malignant: self.p_malignant,
        }
    }
}

/// A wrong prediction shown in the report's gallery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mistake {
    /// Image id.
    pub image_id: String,
    /// Index of the true class.
    pub true_class: usize,
    /// Index of the predicted (top) class.
    pub predicted_class: usize,
    /// Probability of the predicted class.
    pub confidence: f32,
    /// P(malignant).
    pub p_malignant: f32,
    /// `data:image/jpeg;base64,…` thumbnail, when the image could be read again.
    pub thumbnail: Option<String>,
}

/// Everything measured in one evaluation; [`report::render_html`] turns it into the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// How the evaluation ran.
    pub run: RunInfo,
    /// What happened to the labelled rows.
    pub inputs: InputCounts,
    /// The model's classes in output order.
    pub classes: Vec<ClassInfo>,
    /// The figures.
    pub metrics: Metrics,
    /// Per-image outputs, in label-file order.
    pub predictions: Vec<ImagePrediction>,
    /// The most confident mistakes, most confident first.
    pub gallery: Vec<Mistake>,
}

/// The contents of `metrics.json`: the run, the input counts and the figures (no per-image data).
#[derive(Debug, Clone, Serialize)]
pub struct MetricsFile<'a> {
    /// How the evaluation ran.
    pub run: &'a RunInfo,
    /// What happened to the labelled rows.
    pub inputs: &'a InputCounts,
    /// The figures.
    #[serde(flatten)]
    pub metrics: &'a Metrics,
}

impl EvalResult {
    /// The `metrics.json` view of this result.
    pub fn metrics_file(&self) -> MetricsFile<'_> {
        MetricsFile {
            run: &self.run,
            inputs: &self.inputs,
            metrics: &self.metrics,
        }
    }

    /// Per-image samples for the pure metric functions.
    pub fn samples(&self) -> Vec<Sample> {
        self.predictions
            .iter()
            .map(ImagePrediction::sample)
            .collect()
    }
}

/// Indices into `predictions` of the `n` wrong predictions with the highest top-class probability
/// (ties broken by image id, so that reports are reproducible).
pub fn most_confident_mistakes(predictions: &[ImagePrediction], n: usize) -> Vec<usize> {
    let mut wrong: Vec<(usize, f32)> = predictions
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let s = p.sample();
            (s.predicted_class() != p.true_class).then(|| (i, s.confidence()))
        })
        .collect();
    wrong.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| predictions[a.0].image_id.cmp(&predictions[b.0].image_id))
    });
    wrong.into_iter().take(n).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(id: &str, t: usize, p: [f32; 3]) -> ImagePrediction {
        ImagePrediction {
            image_id: id.into(),
            true_class: t,
            probabilities: p.to_vec(),
            p_malignant: p[0],
        }
    }

    #[test]
    fn the_gallery_takes_the_most_confident_wrong_predictions_only() {
        let preds = vec![
            pred("right-but-sure", 0, [0.99, 0.005, 0.005]),
            pred("wrong-0.6", 1, [0.6, 0.3, 0.1]),
            pred("wrong-0.9", 2, [0.05, 0.9, 0.05]),
            pred("wrong-0.6-b", 0, [0.2, 0.2, 0.6]),
            pred("wrong-0.5", 0, [0.1, 0.5, 0.4]),
        ];
        assert_eq!(most_confident_mistakes(&preds, 3), vec![2, 1, 3]);
        assert_eq!(most_confident_mistakes(&preds, 10).len(), 4);
    }
}
