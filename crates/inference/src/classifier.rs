//! The classifier: a model card plus a backend, from image bytes to calibrated predictions.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::tract::{TractBackend, TractOptions};
use crate::backend::{Backend, BackendKind, Expected};
use crate::card::ModelCard;
use crate::decode::{DecodeLimits, decode_image};
use crate::error::InferenceError;
use crate::preprocess::{Normalization, View, image_to_tensor};

/// How a [`Classifier`] runs.
#[derive(Debug, Clone)]
pub struct ClassifierConfig {
    /// Which backend runs the model.
    pub backend: BackendKind,
    /// CPU threads one `predict` call may use.
    pub threads: usize,
    /// Test-time augmentation: average the probabilities of 6 flips/rotations of each image.
    pub tta: bool,
    /// Most images per forward pass; `predict` splits larger batches.
    pub max_batch: usize,
    /// Path of libonnxruntime for the `ort` backend; `None` reads `ORT_DYLIB_PATH`.
    pub ort_library: Option<PathBuf>,
    /// Decoding limits against decompression bombs.
    pub limits: DecodeLimits,
    /// tract tuning (plan per batch size, multi-thread strategy).
    pub tract: TractOptions,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self {
            backend: BackendKind::Tract,
            threads: 1,
            tta: false,
            max_batch: 32,
            ort_library: None,
            limits: DecodeLimits::default(),
            tract: TractOptions::default(),
        }
    }
}

/// One image after decoding and the card's preprocessing, ready for [`Classifier::predict`].
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// Normalised CHW tensor, `3 × S × S`.
    pub tensor: Vec<f32>,
    /// Width of the decoded, upright original.
    pub width: u32,
    /// Height of the decoded, upright original.
    pub height: u32,
}

/// The triage answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// P(malignant) is at or above the card's threshold.
    SeeADoctor,
    /// P(malignant) is below the card's threshold.
    LooksBenign,
}

impl Verdict {
    /// The verdict in words for the person who sent the photo.
    pub fn plain_words(&self) -> &'static str {
        match self {
            Verdict::SeeADoctor => "Please show this mole to a doctor.",
            Verdict::LooksBenign => "This mole looks benign, but check it again if it changes.",
        }
    }

    /// The serde name (`see_a_doctor` / `looks_benign`), for storage.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::SeeADoctor => "see_a_doctor",
            Verdict::LooksBenign => "looks_benign",
        }
    }
}

impl std::str::FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "see_a_doctor" => Ok(Verdict::SeeADoctor),
            "looks_benign" => Ok(Verdict::LooksBenign),
            other => Err(format!("unknown verdict {other:?}")),
        }
    }
}

/// Why a photo is refused instead of diagnosed: the model cannot judge it, and says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The photo is smaller than the card's `min_side`.
    TooSmall,
    /// The model's view is darker than any lesion photo it was checked on.
    TooDark,
    /// The model's view is brighter than any lesion photo it was checked on.
    Overexposed,
    /// The model's view has less detail than the lesion photos it was checked on.
    TooBlurry,
    /// The photo's features are far from every lesion the model was trained on.
    NotALesion,
}

impl RefusalReason {
    /// Every reason, in the order they are checked.
    pub const ALL: [RefusalReason; 5] = [
        Self::TooSmall,
        Self::TooDark,
        Self::Overexposed,
        Self::TooBlurry,
        Self::NotALesion,
    ];

    /// The serde name, for storage.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TooSmall => "too_small",
            Self::TooDark => "too_dark",
            Self::Overexposed => "overexposed",
            Self::TooBlurry => "too_blurry",
            Self::NotALesion => "not_a_lesion",
        }
    }

    /// Why, in words for the person who sent the photo.
    pub fn plain_words(&self) -> &'static str {
        match self {
            Self::TooSmall => {
                "This photo is too small for the model to see the skin in enough detail."
            }
            Self::TooDark => "This photo is too dark for the model to see the skin.",
            Self::Overexposed => "This photo is too bright: the skin is washed out.",
            Self::TooBlurry => {
                "This photo is too blurry for the model to see the lesion's edges and pattern."
            }
            Self::NotALesion => {
                "This does not look like a close-up photo of a skin lesion, so the model cannot judge it."
            }
        }
    }

    /// What to do about it.
    pub fn advice(&self) -> &'static str {
        match self {
            Self::TooSmall => {
                "Send the photo at its full size (at least a few hundred pixels on each side), not a thumbnail."
            }
            Self::TooDark => {
                "Take the photo in daylight or good indoor light; avoid your own shadow over the spot."
            }
            Self::Overexposed => {
                "Turn the flash off and move out of direct sunlight; let the camera set the exposure."
            }
            Self::TooBlurry => {
                "Hold the camera still about 10 cm from the skin and tap the spot on the screen to focus before taking the photo."
            }
            Self::NotALesion => {
                "Photograph only the spot on the skin: fill most of the frame with it, in focus and in even light, with nothing else in the picture."
            }
        }
    }
}

impl std::str::FromStr for RefusalReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown refusal reason {s:?}"))
    }
}

/// What the model measured about the photo itself (the card's `refusal.signals`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhotoSignals {
    /// Distance of the photo's features from the training lesions (larger = stranger).
    pub ood: f32,
    /// Mean brightness of the model's view, 0–1.
    pub luma: f32,
    /// Mean squared Laplacian of the model's view's brightness (larger = sharper).
    pub sharpness: f32,
}

/// An occlusion map being drawn: P(malignant) of the copies run so far (the view first), so that
/// an interrupted map goes on where it stopped ([`Classifier::occlusion_while`]).
#[derive(Debug, Clone, Default)]
pub struct MapProgress {
    p_malignant: Vec<f32>,
}

impl MapProgress {
    /// Copies of the image run so far.
    pub fn rows_done(&self) -> usize {
        self.p_malignant.len()
    }
}

/// What the model looked at: how much covering each cell of a grid laid over the model's view
/// changes P(malignant) (occlusion sensitivity, Zeiler & Fergus 2014).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcclusionMap {
    /// Cells per side of the grid.
    pub grid: usize,
    /// P(malignant) of the uncovered view (no test-time augmentation).
    pub base: f32,
    /// For each cell, row-major from the top left: `base` minus P(malignant) with the cell covered
    /// by the photo's mean colour. Positive: the cell raised P(malignant); negative: it lowered it.
    pub cells: Vec<f32>,
    /// Where the model's view (the centre square) lies in the photo, as fractions of the photo's
    /// width and height: `[left, top, width, height]`.
    pub view: [f32; 4],
}

/// The model's answer for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Calibrated probabilities in the card's class order (they sum to 1).
    pub probabilities: Vec<f32>,
    /// Sum of the probabilities of the card's malignant classes.
    pub p_malignant: f32,
    /// `SeeADoctor` when `p_malignant >= threshold`.
    pub verdict: Verdict,
    /// Index of the most probable class.
    pub top_class: usize,
    /// `name@version` of the model card.
    pub model_version: String,
    /// What the model measured about the photo (when the card has a `refusal` section).
    #[serde(default)]
    pub signals: Option<PhotoSignals>,
    /// Set when the photo cannot be judged: then the probabilities are not a diagnosis and must
    /// not be shown as one.
    #[serde(default)]
    pub refusal: Option<RefusalReason>,
}

/// A loaded model, ready to classify. Cheap to share: wrap it in an `Arc`; `predict` may be called
/// from several threads at once.
pub struct Classifier {
    card: ModelCard,
    backend: Box<dyn Backend>,
    config: ClassifierConfig,
    norm: Normalization,
    malignant: Vec<bool>,
    version: String,
    /// Column of `ood`, `luma` and `sharpness` in the signals output.
    signal_columns: Option<[usize; 3]>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("model", &self.version)
            .field("backend", &self.backend.name())
            .field("config", &self.config)
            .finish()
    }
}

/// `softmax(logits / temperature)`, computed stably in f64.
pub fn calibrated_softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let scaled: Vec<f64> = logits
        .iter()
        .map(|&l| f64::from(l) / f64::from(temperature))
        .collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = scaled.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

impl Classifier {
    /// Loads the card, verifies the ONNX file's sha256 and shape against it, and prepares the backend.
    pub fn load(card_path: &Path, config: ClassifierConfig) -> Result<Self, InferenceError> {
        let card = ModelCard::load(card_path)?;
        Self::from_card(card, config)
    }

    /// Like [`Classifier::load`] for a card already in memory.
    pub fn from_card(card: ModelCard, config: ClassifierConfig) -> Result<Self, InferenceError> {
        if config.max_batch == 0 || config.threads == 0 {
            return Err(InferenceError::Config {
                reason: "max_batch and threads must be at least 1".into(),
            });
        }
        let onnx = card.read_verified_onnx()?;
        let expected = Expected {
            onnx_path: card.onnx_path(),
            input_name: card.input.name.clone(),
            output_name: card.output.name.clone(),
            size: card.input_size() as usize,
            classes: card.num_classes(),
            signals: card
                .refusal
                .as_ref()
                .map(|r| (r.output.clone(), r.signals.len())),
        };
        let signal_columns = card.refusal.as_ref().map(|r| {
            let col = |name: &str| {
                r.signals
                    .iter()
                    .position(|s| s == name)
                    .expect("validated by the card")
            };
            [col("ood"), col("luma"), col("sharpness")]
        });
        let backend: Box<dyn Backend> = match config.backend {
            BackendKind::Tract => Box::new(TractBackend::load(
                &onnx,
                expected,
                config.threads,
                config.tract,
            )?),
            #[cfg(feature = "ort")]
            BackendKind::Ort => Box::new(crate::backend::ort::OrtBackend::load(
                onnx,
                expected,
                config.threads,
                config.ort_library.as_deref(),
            )?),
            #[cfg(not(feature = "ort"))]
            BackendKind::Ort => {
                return Err(InferenceError::Config {
                    reason: "this build has no onnxruntime backend (rebuild with --features ort)"
                        .into(),
                });
            }
        };
        Ok(Self {
            norm: Normalization::from_card(&card),
            malignant: card.malignant_mask(),
            version: card.model_version(),
            signal_columns,
            card,
            backend,
            config,
        })
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The configuration the classifier was loaded with.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// Name of the backend running the model (`tract` / `onnxruntime`).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// `name@version` of the model, as reported in every prediction.
    pub fn model_version(&self) -> String {
        self.version.clone()
    }

    /// Decodes image bytes (within the configured limits) and applies the card's preprocessing.
    pub fn preprocess(&self, bytes: &[u8]) -> Result<Preprocessed, InferenceError> {
        let image = decode_image(bytes, &self.config.limits)?;
        Ok(self.preprocess_image(image))
    }

    /// Applies the card's preprocessing to an already decoded upright RGB image.
    pub fn preprocess_image(&self, image: image::RgbImage) -> Preprocessed {
        let (width, height) = image.dimensions();
        let tensor = image_to_tensor(image, self.card.input_size(), &self.norm);
        Preprocessed {
            tensor,
            width,
            height,
        }
    }

    /// Classifies a batch: one forward pass per `max_batch` images (with TTA, each image brings
    /// its 6 views into the same pass). Returns one prediction per image, in order.
    pub fn predict(&self, batch: &[Preprocessed]) -> Result<Vec<Prediction>, InferenceError> {
        let size = self.card.input_size() as usize;
        let per_image = 3 * size * size;
        if let Some((i, bad)) = batch
            .iter()
            .enumerate()
            .find(|(_, p)| p.tensor.len() != per_image)
        {
            return Err(InferenceError::InvalidBatch {
                reason: format!(
                    "image {i} has {} values, this model takes 3×{size}×{size} = {per_image}",
                    bad.tensor.len()
                ),
            });
        }
        let views: &[View] = if self.config.tta {
            &View::TTA
        } else {
            &[View::Identity]
        };
        let classes = self.card.num_classes();
        let width = self.row_width();
        let mut predictions = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(self.config.max_batch) {
            let rows = chunk.len() * views.len();
            let mut input = Vec::with_capacity(rows * per_image);
            for image in chunk {
                for view in views {
                    view.extend_into(&image.tensor, size, &mut input);
                }
            }
            let out = self.run_rows(&input, rows)?;
            for (image, image_rows) in chunk.iter().zip(out.chunks(views.len() * width)) {
                let mut probabilities = vec![0.0f32; classes];
                for row in image_rows.chunks(width) {
                    let p = calibrated_softmax(&row[..classes], self.card.temperature);
                    for (acc, v) in probabilities.iter_mut().zip(p) {
                        *acc += v / views.len() as f32;
                    }
                }
                // The photo's own signals come from its untransformed view (the first).
                let signals = self.signal_columns.map(|[o, l, s]| {
                    let row = &image_rows[classes..width];
                    PhotoSignals {
                        ood: row[o],
                        luma: row[l],
                        sharpness: row[s],
                    }
                });
                let mut prediction = self.prediction(probabilities);
                prediction.refusal = self.refusal(image, signals.as_ref());
                prediction.signals = signals;
                predictions.push(prediction);
            }
        }
        Ok(predictions)
    }

    /// Whether the card's limits refuse this photo, checked in [`RefusalReason::ALL`]'s order:
    /// what the person can fix most easily (size, light, focus) is named before "not a lesion".
    pub fn refusal(
        &self,
        image: &Preprocessed,
        signals: Option<&PhotoSignals>,
    ) -> Option<RefusalReason> {
        let spec = self.card.refusal.as_ref()?;
        let signals = signals?;
        if image.width.min(image.height) < spec.min_side {
            Some(RefusalReason::TooSmall)
        } else if signals.luma < spec.luma_min {
            Some(RefusalReason::TooDark)
        } else if signals.luma > spec.luma_max {
            Some(RefusalReason::Overexposed)
        } else if signals.sharpness < spec.sharpness_min {
            Some(RefusalReason::TooBlurry)
        } else if signals.ood > spec.ood_max {
            Some(RefusalReason::NotALesion)
        } else {
            None
        }
    }

    /// The occlusion map of one image: the view and `grid × grid` copies with one cell covered by
    /// the image's mean colour, run as one batch (split only at `max_batch` rows), without TTA.
    pub fn occlusion(
        &self,
        image: &Preprocessed,
        grid: usize,
    ) -> Result<OcclusionMap, InferenceError> {
        let all = self.config.max_batch;
        self.occlusion_while(image, grid, all, &mut MapProgress::default(), || true)
            .map(|map| map.expect("never interrupted"))
    }

    /// The occlusion map run `chunk_rows` copies at a time, asking `keep_going` before each
    /// chunk: `Ok(None)` when it says no. What was run so far stays in `progress`, and a later
    /// call with the same `progress` (same image and grid) goes on from there: a worker draws maps
    /// only while no verdict waits, and small chunks let a new verdict in within one chunk's time
    /// without losing the chunks already run. Only the copies of the chunk at hand are built.
    pub fn occlusion_while(
        &self,
        image: &Preprocessed,
        grid: usize,
        chunk_rows: usize,
        progress: &mut MapProgress,
        mut keep_going: impl FnMut() -> bool,
    ) -> Result<Option<OcclusionMap>, InferenceError> {
        let size = self.card.input_size() as usize;
        let plane = size * size;
        if !(1..=size).contains(&grid) || image.tensor.len() != 3 * plane {
            return Err(InferenceError::InvalidBatch {
                reason: format!(
                    "an occlusion grid of {grid} on a tensor of {} values",
                    image.tensor.len()
                ),
            });
        }
        let rows = grid * grid + 1;
        if progress.p_malignant.len() > rows {
            return Err(InferenceError::InvalidBatch {
                reason: format!(
                    "a map in progress with {} of {rows} copies",
                    progress.p_malignant.len()
                ),
            });
        }
        let mean: Vec<f32> = image
            .tensor
            .chunks(plane)
            .map(|c| c.iter().sum::<f32>() / plane as f32)
            .collect();
        let edge = |i: usize| i * size / grid;
        // Copy 0 is the view; copy 1 + r·grid + c has cell (r, c) covered.
        let push_copy = |input: &mut Vec<f32>, copy_index: usize| {
            let start = input.len();
            input.extend_from_slice(&image.tensor);
            if copy_index == 0 {
                return;
            }
            let (r, c) = ((copy_index - 1) / grid, (copy_index - 1) % grid);
            let copy = &mut input[start..];
            for (ch, m) in mean.iter().enumerate() {
                for y in edge(r)..edge(r + 1) {
                    let row = ch * plane + y * size;
                    copy[row + edge(c)..row + edge(c + 1)].fill(*m);
                }
            }
        };
        let classes = self.card.num_classes();
        let chunk_rows = chunk_rows.clamp(1, self.config.max_batch);
        let mut input = Vec::with_capacity(chunk_rows * 3 * plane);
        while progress.p_malignant.len() < rows {
            if !keep_going() {
                return Ok(None);
            }
            let first = progress.p_malignant.len();
            let count = chunk_rows.min(rows - first);
            input.clear();
            for i in first..first + count {
                push_copy(&mut input, i);
            }
            let out = self.run_rows(&input, count)?;
            for row in out.chunks(self.row_width()) {
                let p = calibrated_softmax(&row[..classes], self.card.temperature);
                progress.p_malignant.push(self.p_malignant(&p));
            }
        }
        let p_malignant = &progress.p_malignant;
        let base = p_malignant[0];
        let (w, h) = (image.width.max(1) as f32, image.height.max(1) as f32);
        let side = w.min(h);
        Ok(Some(OcclusionMap {
            grid,
            base,
            cells: p_malignant[1..].iter().map(|p| base - p).collect(),
            view: [
                ((w - side) / 2.0).floor() / w,
                ((h - side) / 2.0).floor() / h,
                side / w,
                side / h,
            ],
        }))
    }

    /// Values per row of what the backend returns: the logits, then the refusal signals.
    fn row_width(&self) -> usize {
        self.card.num_classes() + self.card.refusal.as_ref().map_or(0, |r| r.signals.len())
    }

    /// One forward pass over `rows` inputs, its output checked for shape and finiteness.
    fn run_rows(&self, input: &[f32], rows: usize) -> Result<Vec<f32>, InferenceError> {
        let out = self.backend.run(input, rows)?;
        let width = self.row_width();
        if out.len() != rows * width {
            return Err(InferenceError::Backend {
                backend: self.backend.name(),
                reason: format!("{} values for {rows} rows of {width}", out.len()),
            });
        }
        if out.iter().any(|l| !l.is_finite()) {
            return Err(InferenceError::Backend {
                backend: self.backend.name(),
                reason: "the model produced non-finite outputs".into(),
            });
        }
        Ok(out)
    }

    /// Sum of the card's malignant classes' probabilities.
    fn p_malignant(&self, probabilities: &[f32]) -> f32 {
        probabilities
            .iter()
            .zip(&self.malignant)
            .filter(|(_, m)| **m)
            .map(|(p, _)| *p)
            .sum()
    }

    /// Builds the prediction for calibrated probabilities in card order.
    fn prediction(&self, probabilities: Vec<f32>) -> Prediction {
        let p_malignant = self.p_malignant(&probabilities);
        let top_class = argmax(&probabilities);
        let verdict = if p_malignant >= self.card.threshold {
            Verdict::SeeADoctor
        } else {
            Verdict::LooksBenign
        };
        Prediction {
            probabilities,
            p_malignant,
            verdict,
            top_class,
            model_version: self.version.clone(),
            signals: None,
            refusal: None,
        }
    }

    /// Runs a real forward pass on a mid-grey image. Use it at start-up and as a health check.
    pub fn warm_up(&self) -> Result<(), InferenceError> {
        let size = self.card.input_size();
        let grey = image::RgbImage::from_pixel(size, size, image::Rgb([128, 128, 128]));
        let image = self.preprocess_image(grey);
        let out = self.predict(std::slice::from_ref(&image))?;
        let sum: f32 = out[0].probabilities.iter().sum();
        if (sum - 1.0).abs() > 1e-3 {
            return Err(InferenceError::Backend {
                backend: self.backend.name(),
                reason: format!("probabilities sum to {sum}"),
            });
        }
        Ok(())
    }

    /// Builds what forward passes of these batch sizes need (tract: one optimised plan per size,
    /// a fraction of a second each) so that the first requests do not wait for it. With TTA a
    /// batch of n images runs as 6n rows; pass image counts, the views are accounted for here.
    pub fn prepare_batch_sizes(&self, batch_sizes: &[usize]) -> Result<(), InferenceError> {
        let views = if self.config.tta { View::TTA.len() } else { 1 };
        let rows: Vec<usize> = batch_sizes
            .iter()
            .map(|&n| n.min(self.config.max_batch) * views)
            .collect();
        self.backend.prepare(&rows)
    }

    /// One raw forward pass over `batch` preprocessed images laid out NCHW; returns per image its
    /// logits, then its refusal signals when the card has them (no TTA, no calibration). For
    /// benchmarks and diagnostics.
    pub fn forward(&self, input: &[f32], batch: usize) -> Result<Vec<f32>, InferenceError> {
        self.backend.run(input, batch)
    }
}

/// Index of the largest value, the first one on ties (as numpy's `argmax`, which the training
/// code and `mole eval` use); NaN never wins.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] || (values[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_softmax_sums_to_one_and_flattens_with_temperature() {
        let logits = [2.0, 1.0, 0.0];
        let p1 = calibrated_softmax(&logits, 1.0);
        let p2 = calibrated_softmax(&logits, 2.0);
        assert!((p1.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p2.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p1[0] - 0.665_240_9).abs() < 1e-6);
        assert!(p2[0] < p1[0] && p2[2] > p1[2]);
    }

    #[test]
    fn calibrated_softmax_survives_huge_logits() {
        let p = calibrated_softmax(&[1000.0, 0.0, -1000.0], 1.0);
        assert!(p.iter().all(|v| v.is_finite()));
        assert!((p[0] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn verdict_serialises_in_snake_case_and_parses_back() {
        assert_eq!(
            serde_json::to_string(&Verdict::SeeADoctor).unwrap(),
            "\"see_a_doctor\""
        );
        assert_eq!(
            serde_json::to_string(&Verdict::LooksBenign).unwrap(),
            "\"looks_benign\""
        );
        assert_eq!("see_a_doctor".parse::<Verdict>(), Ok(Verdict::SeeADoctor));
        assert!(Verdict::SeeADoctor.plain_words().contains("doctor"));
    }
    #[test]
    fn argmax_takes_the_first_maximum_and_nan_never_wins() {
        assert_eq!(argmax(&[0.3, 0.3, 0.1]), 0);
        assert_eq!(argmax(&[0.1, 0.5, 0.5]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.2, 0.1]), 1);
        assert_eq!(argmax(&[]), 0);
    }
}
