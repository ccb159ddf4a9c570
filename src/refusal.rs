//! `mole refusal`: refusal rates of a model card per group of pictures (see `mole_eval::refusal`).

use std::path::PathBuf;

use anyhow::Context;
use mole_eval::{RefusalOptions, evaluate_refusal, write_refusal};

use crate::eval::{LabelledPhotos, ModelRun};

/// Arguments of `mole refusal`.
#[derive(Debug, clap::Args)]
pub struct RefusalArgs {
    /// Model card (`models/<name>.card.json`); it must have a `refusal` section.
    #[arg(long, default_value = mole_inference::DEFAULT_CARD)]
    pub model: PathBuf,
    /// The refusal test set (folder with `manifest.csv`).
    #[arg(long, default_value = "tests/fixtures/refusal")]
    pub set: PathBuf,
    /// The lesion photos (HAM10000's images and `metadata.csv`), optionally one split.
    #[command(flatten)]
    pub photos: LabelledPhotos,
    /// Backend, batch and threads.
    #[command(flatten)]
    pub run: ModelRun,
    /// Where to write refusal.json and refusal.md (not written when absent).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the measurement and prints the table.
pub fn run(args: RefusalArgs) -> anyhow::Result<()> {
    let opts = RefusalOptions {
        card: args.model.clone(),
        set: args.set,
        split: args.photos.split(),
        images: args.photos.images,
        labels: args.photos.labels,
        backend: args.run.backend,
        batch: args.run.batch,
        threads: args.run.threads,
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
