//! `mole bench-model`: flags → [`mole_inference::bench`] → a Markdown report on stdout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mole_inference::bench::{self, BenchConfig};
use mole_inference::{BackendKind, TractOptions, TractParallelism, TractPlans};

/// Flags of `mole bench-model`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model card to measure.
    #[arg(long, default_value = mole_inference::DEFAULT_CARD)]
    model: PathBuf,
    /// Folder of images to feed the model (and to time decoding on).
    #[arg(long, default_value = "tests/fixtures/ham10000")]
    images: PathBuf,
    /// Backends, comma-separated; default: tract, plus ort when built with `--features ort`.
    #[arg(long, value_delimiter = ',')]
    backends: Vec<BackendKind>,
    /// Batch sizes (images per forward pass), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batch_sizes: Vec<usize>,
    /// Threads per forward pass, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Also measure N concurrent single-threaded callers sharing one classifier (0: skip).
    #[arg(long, default_value_t = 0)]
    parallel_callers: usize,
    /// Minimum seconds of measurement per configuration.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Minimum forward passes per configuration.
    #[arg(long, default_value_t = 10)]
    min_runs: usize,
    /// libonnxruntime.so for the ort backend (default: $ORT_DYLIB_PATH).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    ort_library: Option<PathBuf>,
    /// tract plans: exact (one per batch size), pad-pow2, symbolic.
    #[arg(long, default_value = "exact")]
    tract_plans: TractPlans,
    /// tract with several threads: split-batch or intra-op.
    #[arg(long, default_value = "split-batch")]
    tract_parallelism: TractParallelism,
}

/// Runs the benchmark and prints the report.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let backends = if args.backends.is_empty() {
        [BackendKind::Tract, BackendKind::Ort]
            .into_iter()
            .filter(|b| b.is_available())
            .collect()
    } else {
        args.backends
    };
    let config = BenchConfig {
        card: args.model,
        images: args.images,
        backends,
        batch_sizes: args.batch_sizes,
        threads: args.threads,
        parallel_callers: args.parallel_callers,
        min_time: Duration::from_secs_f64(args.seconds),
        min_runs: args.min_runs.max(1),
        ort_library: args.ort_library,
        tract: TractOptions {
            plans: args.tract_plans,
            parallelism: args.tract_parallelism,
        },
        ..BenchConfig::default()
    };
    let report = bench::run(&config, |row| {
        eprintln!(
            "{} threads={} callers={} batch={}: {:.1} images/s, p50 {:.2} ms",
            row.backend, row.threads, row.callers, row.batch, row.images_per_s, row.latency.p50_ms
        );
    })
    .context("benchmark failed")?;
    println!("{}", report.to_markdown());
    Ok(())
}
