//! Runs a model card over a directory of labelled images and writes the outputs.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mole_inference::{
    BackendKind, Classifier, ClassifierConfig, InferenceError, Preprocessed, decode_image,
};
use sha2::{Digest, Sha256};

use crate::labels::{self, LabelError, LabelledImage};
use crate::metrics::{self, ClassInfo, MetricsError};
use crate::{
    EvalResult, ImagePrediction, InputCounts, Mistake, RunInfo, SplitInfo, most_confident_mistakes,
};

/// Number of ids kept as examples of missing or unreadable images.
const EXAMPLES: usize = 20;

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The model card (`models/<name>.card.json`).
    pub card: PathBuf,
    /// Directory holding `<image id>.jpg|.jpeg|.png`.
    pub images: PathBuf,
    /// Label CSV (HAM10000 `metadata.csv` style or ISIC one-hot).
    pub labels: PathBuf,
    /// Restrict to the rows of this split: `(split CSV, split name)`.
    pub split: Option<(PathBuf, String)>,
    /// Backend running the model.
    pub backend: BackendKind,
    /// Test-time augmentation.
    pub tta: bool,
    /// Images per forward pass.
    pub batch: usize,
    /// CPU threads for the backend.
    pub threads: usize,
    /// Evaluate only the first `n` selected images (label-file order).
    pub limit: Option<usize>,
    /// Number of mistakes shown in the report's gallery.
    pub gallery_size: usize,
    /// Longest side of a gallery thumbnail in pixels.
    pub thumbnail_px: u32,
    /// Show a progress bar on stderr (drawn only when stderr is a terminal).
    pub progress: bool,
}

impl EvalOptions {
    /// Options with the defaults of `mole eval` for the given card, images and labels.
    pub fn new(
        card: impl Into<PathBuf>,
        images: impl Into<PathBuf>,
        labels: impl Into<PathBuf>,
    ) -> Self {
        Self {
            card: card.into(),
            images: images.into(),
            labels: labels.into(),
            split: None,
            backend: BackendKind::Tract,
            tta: false,
            batch: 32,
            threads: 1,
            limit: None,
            gallery_size: 12,
            thumbnail_px: 96,
            progress: true,
        }
    }
}

/// Why an evaluation failed as a whole (single bad images are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The label or split CSV is malformed.
    #[error("{path}: {source}")]
    Labels {
        /// The CSV.
        path: PathBuf,
        /// The cause.
        source: LabelError,
    },
    /// The model could not be loaded or run.
    #[error("model: {0}")]
    Model(#[from] InferenceError),
    /// The options are inconsistent.
    #[error("invalid options: {0}")]
    Options(String),
    /// No image could be evaluated.
    #[error(
        "nothing could be evaluated: {selected} images selected, {missing} missing from the image directory, {unreadable} unreadable"
    )]
    NothingEvaluated {
        /// Images selected.
        selected: usize,
        /// Missing images.
        missing: usize,
        /// Unreadable images.
        unreadable: usize,
    },
    /// The metrics could not be computed.
    #[error("metrics: {0}")]
    Metrics(#[from] MetricsError),
    /// `metrics.json` could not be serialised.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Maps image ids to files in `dir`: `<id>.jpg`, `.jpeg` or `.png` (any case), preferring that order.
pub fn index_images(dir: &Path) -> Result<HashMap<String, PathBuf>, EvalError> {
    let mut index: HashMap<String, (usize, PathBuf)> = HashMap::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let (Some(stem), Some(ext)) = (path.file_stem().and_then(|s| s.to_str()), path.extension())
        else {
            continue;
        };
        let rank = match ext.to_string_lossy().to_ascii_lowercase().as_str() {
            "jpg" => 0,
            "jpeg" => 1,
            "png" => 2,
            _ => continue,
        };
        let better = index.get(stem).is_none_or(|(r, _)| rank < *r);
        if better {
            index.insert(stem.to_string(), (rank, path));
        }
    }
    Ok(index.into_iter().map(|(k, (_, p))| (k, p)).collect())
}

fn sha256_file(path: &Path) -> Result<String, EvalError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

pub(crate) fn read_csv<T>(
    path: &Path,
    f: impl FnOnce(fs::File) -> Result<T, LabelError>,
) -> Result<T, EvalError> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    f(file).map_err(|source| EvalError::Labels {
        path: path.to_path_buf(),
        source,
    })
}

fn progress_bar(len: usize, enabled: bool) -> ProgressBar {
    let target = if enabled {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len as u64), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} images ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Loads the model, classifies the selected labelled images and computes every figure.
///
/// Missing and undecodable images are counted in [`InputCounts`]; the call fails only when the
/// inputs are malformed, the model fails, or no image at all could be evaluated.
pub fn evaluate_directory(opts: &EvalOptions) -> Result<EvalResult, EvalError> {
    if opts.batch == 0 {
        return Err(EvalError::Options("--batch must be at least 1".into()));
    }
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let clock = Instant::now();
    let card_sha256 = sha256_file(&opts.card)?;
    let config = ClassifierConfig {
        backend: opts.backend,
        tta: opts.tta,
        max_batch: opts.batch,
        threads: opts.threads.max(1),
        ..ClassifierConfig::default()
    };
    let classifier = Classifier::load(&opts.card, config)?;
    let card = classifier.card();
    let classes: Vec<ClassInfo> = card
        .classes
        .iter()
        .map(|c| ClassInfo {
            code: c.code.clone(),
            name: c.name.clone(),
            malignant: c.malignant,
        })
        .collect();
    let codes: Vec<&str> = classes.iter().map(|c| c.code.as_str()).collect();

    let labels = read_csv(&opts.labels, |f| labels::read_labels(f, &codes))?;
    let mut inputs = InputCounts {
        labelled: labels.images.len(),
        duplicate_label_rows: labels.duplicates,
        ..InputCounts::default()
    };
    let mut selected: Vec<LabelledImage> = labels.images;
    if let Some((split_file, split_name)) = &opts.split {
        let ids = read_csv(split_file, |f| labels::read_split(f, split_name))?;
        let before = ids.len();
        selected.retain(|l| ids.contains(&l.image_id));
        inputs.split_without_label = before - selected.len();
    }
    if let Some(n) = opts.limit {
        selected.truncate(n);
    }
    inputs.selected = selected.len();

    let files = index_images(&opts.images)?;
    let bar = progress_bar(selected.len(), opts.progress);
    let mut predictions: Vec<ImagePrediction> = Vec::with_capacity(selected.len());
    for chunk in selected.chunks(opts.batch) {
        let mut ready: Vec<(&LabelledImage, Preprocessed)> = Vec::with_capacity(chunk.len());
        for item in chunk {
            let Some(path) = files.get(&item.image_id) else {
                inputs.missing += 1;
                if inputs.missing_examples.len() < EXAMPLES {
                    inputs.missing_examples.push(item.image_id.clone());
                }
                continue;
            };
            let outcome = fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| classifier.preprocess(&bytes).map_err(|e| e.to_string()));
            match outcome {
                Ok(pre) => ready.push((item, pre)),
                Err(reason) => {
                    inputs.unreadable += 1;
                    if inputs.unreadable_examples.len() < EXAMPLES {
                        inputs
                            .unreadable_examples
                            .push((item.image_id.clone(), reason));
                    }
                }
            }
        }
        if !ready.is_empty() {
            let tensors: Vec<Preprocessed> = ready.iter().map(|(_, p)| p.clone()).collect();
            let out = classifier.predict(&tensors)?;
            for ((item, _), p) in ready.iter().zip(out) {
                predictions.push(ImagePrediction {
                    image_id: item.image_id.clone(),
                    true_class: item.class_index,
                    probabilities: p.probabilities,
                    p_malignant: p.p_malignant,
                });
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    inputs.evaluated = predictions.len();
    if predictions.is_empty() {
        return Err(EvalError::NothingEvaluated {
            selected: inputs.selected,
            missing: inputs.missing,
            unreadable: inputs.unreadable,
        });
    }
    let wall_seconds = clock.elapsed().as_secs_f64();

    let samples: Vec<_> = predictions.iter().map(ImagePrediction::sample).collect();
    let metrics = metrics::evaluate(&samples, &classes, f64::from(card.threshold))?;
    let gallery = most_confident_mistakes(&predictions, opts.gallery_size)
        .into_iter()
        .map(|i| {
            let p = &predictions[i];
            let s = p.sample();
            Mistake {
                image_id: p.image_id.clone(),
                true_class: p.true_class,
                predicted_class: s.predicted_class(),
                confidence: s.confidence(),
                p_malignant: p.p_malignant,
                thumbnail: files
                    .get(&p.image_id)
                    .and_then(|path| thumbnail_data_uri(path, opts.thumbnail_px)),
            }
        })
        .collect();

    let run = RunInfo {
        model_name: card.name.clone(),
        model_version: classifier.model_version(),
        card_path: opts.card.display().to_string(),
        card_sha256,
        onnx_sha256: card.onnx_sha256.clone(),
        backend: classifier.backend_name().to_string(),
        tta: opts.tta,
        batch: opts.batch,
        images_dir: opts.images.display().to_string(),
        labels_csv: opts.labels.display().to_string(),
        label_format: labels.format,
        split: opts.split.as_ref().map(|(f, n)| SplitInfo {
            file: f.display().to_string(),
            name: n.clone(),
        }),
        limit: opts.limit,
        started_at,
        wall_seconds,
        evaluator_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Ok(EvalResult {
        run,
        inputs,
        classes,
        metrics,
        predictions,
        gallery,
    })
}

/// A small JPEG thumbnail of an image file as a `data:` URI; `None` if it cannot be made.
///
/// Decoding goes through the classifier's decoder so that EXIF orientation matches what the
/// model saw.
pub fn thumbnail_data_uri(path: &Path, max_side: u32) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    let image = decode_image(&bytes, &Default::default()).ok()?;
    // Fit the longer side to `max_side`, keeping the aspect ratio; never upscale.
    let (w, h) = image.dimensions();
    let scale = (f64::from(max_side.max(1)) / f64::from(w.max(h).max(1))).min(1.0);
    let tw = ((f64::from(w) * scale).round() as u32).max(1);
    let th = ((f64::from(h) * scale).round() as u32).max(1);
    let thumb = image::imageops::thumbnail(&image, tw, th);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&thumb)
        .ok()?;
    Some(format!(
        "data:image/jpeg;base64,{}",
        crate::base64::encode(&jpeg)
    ))
}

/// Writes `metrics.json`, `predictions.csv` and `report.html` into `out` (created if needed).
pub fn write_outputs(result: &EvalResult, out: &Path) -> Result<(), EvalError> {
    fs::create_dir_all(out).map_err(io_err(out))?;
    let metrics_path = out.join("metrics.json");
    let mut json = serde_json::to_string_pretty(&result.metrics_file())?;
    json.push('\n');
    fs::write(&metrics_path, json).map_err(io_err(&metrics_path))?;

    let csv_path = out.join("predictions.csv");
    let mut csv = String::from("image_id,true,predicted,p_malignant");
    for c in &result.classes {
        csv.push_str(",p_");
        csv.push_str(&c.code);
    }
    csv.push('\n');
    for p in &result.predictions {
        let pred = metrics::argmax(&p.probabilities);
        let code = |i: usize| result.classes.get(i).map_or("?", |c| c.code.as_str());
        csv.push_str(&format!(
            "{},{},{},{:.6}",
            p.image_id,
            code(p.true_class),
            code(pred),
            p.p_malignant
        ));
        for v in &p.probabilities {
            csv.push_str(&format!(",{v:.6}"));
        }
        csv.push('\n');
    }
    fs::write(&csv_path, csv).map_err(io_err(&csv_path))?;

    let html_path = out.join("report.html");
    let mut file = fs::File::create(&html_path).map_err(io_err(&html_path))?;
    file.write_all(crate::report::render_html(result).as_bytes())
        .map_err(io_err(&html_path))?;
    Ok(())
}
