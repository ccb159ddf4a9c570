//! `mole eval`: measure a model card on labelled images and write metrics.json + report.html.

use std::path::PathBuf;

use anyhow::{Context, bail};
use mole_eval::{EvalOptions, evaluate_directory, write_outputs};
use mole_inference::BackendKind;

/// Arguments of `mole eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Model card (`models/<name>.card.json`).
    #[arg(long)]
    pub model: PathBuf,
    /// The labelled photos.
    #[command(flatten)]
    pub photos: LabelledPhotos,
    /// Output directory for metrics.json, predictions.csv and report.html.
    #[arg(long)]
    pub out: PathBuf,
    /// Backend, batch and threads.
    #[command(flatten)]
    pub run: ModelRun,
    /// Test-time augmentation (average over flips/rotations).
    #[arg(long)]
    pub tta: bool,
    /// Evaluate only the first N selected rows.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Number of confident mistakes shown in the report.
    #[arg(long, default_value_t = 12)]
    pub gallery: usize,
}

/// Labelled photos, optionally one split of them (`mole eval`, `mole refusal`).
#[derive(Debug, clap::Args)]
pub struct LabelledPhotos {
    /// Directory of images named `<image id>.jpg|.jpeg|.png`.
    #[arg(long)]
    pub images: PathBuf,
    /// Labels: HAM10000-style CSV (`image_id`/`image` and `dx`) or ISIC one-hot ground truth.
    #[arg(long)]
    pub labels: PathBuf,
    /// Split CSV (`image_id,split`); use only the rows of `--split-name`.
    #[arg(long, requires = "split_name")]
    pub split: Option<PathBuf>,
    /// Name of the split to use (e.g. `test`).
    #[arg(long, requires = "split")]
    pub split_name: Option<String>,
}

impl LabelledPhotos {
    /// `(split CSV, split name)` when both were given.
    pub fn split(&self) -> Option<(PathBuf, String)> {
        self.split.clone().zip(self.split_name.clone())
    }
}

/// How the model runs (`mole eval`, `mole refusal`).
#[derive(Debug, clap::Args)]
pub struct ModelRun {
    /// Inference backend: `tract` or `ort`.
    #[arg(long, default_value = "tract")]
    pub backend: BackendKind,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// CPU threads for the backend.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// Runs the evaluation and prints the headline figures.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if args.run.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let mut opts = EvalOptions::new(&args.model, &args.photos.images, &args.photos.labels);
    opts.split = args.photos.split();
    opts.backend = args.run.backend;
    opts.tta = args.tta;
    opts.batch = args.run.batch;
    opts.threads = args.run.threads;
    opts.limit = args.limit;
    opts.gallery_size = args.gallery;
    let result = evaluate_directory(&opts)
        .with_context(|| format!("evaluating {}", args.model.display()))?;
    write_outputs(&result, &args.out).with_context(|| format!("writing {}", args.out.display()))?;

    let m = &result.metrics;
    let b = &m.malignant_vs_benign;
    let f = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.4}"));
    println!("model              {}", result.run.model_version);
    println!(
        "images             {} evaluated of {} selected ({} missing, {} unreadable)",
        result.inputs.evaluated,
        result.inputs.selected,
        result.inputs.missing,
        result.inputs.unreadable
    );
    println!("balanced accuracy  {:.4}", m.balanced_accuracy);
    println!("accuracy           {:.4}", m.accuracy);
    println!("macro AUC          {}", f(m.macro_auc));
    println!("macro F1           {:.4}", m.macro_f1);
    println!(
        "malignant          AUC {}, sensitivity {}, specificity {} at threshold {:.3}",
        f(b.auc),
        f(b.sensitivity),
        f(b.specificity),
        b.threshold
    );
    println!("ECE (15 bins)      {:.4}", m.calibration.ece);
    println!("wall time          {:.1} s", result.run.wall_seconds);
    println!(
        "wrote              {}",
        args.out.join("report.html").display()
    );
    Ok(())
}
