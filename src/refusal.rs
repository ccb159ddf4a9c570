//! `mole refusal`: refusal rates of a model card per group of pictures (see `mole_eval::refusal`).

use std::path::PathBuf;

use anyhow::Context;
use mole_eval::{RefusalOptions, evaluate_refusal, write_refusal};
use mole_inference::BackendKind;

/// Arguments of `mole refusal`.
#[derive(Debug, clap::Args)]
pub struct RefusalArgs {
    /// Model card (`models/<name>.card.json`); it must have a `refusal` section.
    #[arg(long, default_value = mole_inference::DEFAULT_CARD)]
    pub model: PathBuf,
    /// The refusal test set (folder with `manifest.csv`).
    #[arg(long, default_value = "tests/fixtures/refusal")]
    pub set: PathBuf,
    /// Folder of lesion photos named `<image id>.jpg` (HAM10000's images).
    #[arg(long)]
    pub images: PathBuf,
    /// Labels of the lesion photos (HAM10000 `metadata.csv` style).
    #[arg(long)]
    pub labels: PathBuf,
    /// Split CSV (`image_id,split`); use only the rows of `--split-name`.
    #[arg(long, requires = "split_name")]
    pub split: Option<PathBuf>,
    /// Name of the split (e.g. `test`).
    #[arg(long, requires = "split")]
    pub split_name: Option<String>,
    /// Inference backend: `tract` or `ort`.
    #[arg(long, default_value = "tract")]
    pub backend: BackendKind,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// CPU threads for the backend.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Where to write refusal.json and refusal.md (not written when absent).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the measurement and prints the table.
pub fn run(args: RefusalArgs) -> anyhow::Result<()> {
    let opts = RefusalOptions {
        card: args.model.clone(),
        set: args.set,
        images: args.images,
        labels: args.labels,
        split: args.split.zip(args.split_name),
        backend: args.backend,
        batch: args.batch,
        threads: args.threads,
    };
    let report = evaluate_refusal(&opts)
        .with_context(|| format!("measuring refusals of {}", args.model.display()))?;
    println!("model   {} ({})", report.model_version, report.backend);
    println!("lesions {}\n", report.lesions);
    print!("{}", report.markdown());
    if !report.unreadable.is_empty() {
        println!("\nunreadable: {}", report.unreadable.join(", "));
    }
    for g in report.groups.iter().filter(|g| !g.missed.is_empty()) {
        let shown: Vec<&str> = g.missed.iter().take(12).map(String::as_str).collect();
        println!(
            "{} {}: {}{}",
            if g.should_refuse {
                "diagnosed in"
            } else {
                "refused in"
            },
            g.group,
            shown.join(", "),
            if g.missed.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    if let Some(out) = &args.out {
        write_refusal(&report, out).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
