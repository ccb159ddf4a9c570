//! `mole bench-model`: flags → [`mole_inference::bench`] → a Markdown report on stdout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use mole_inference::bench::{self, BenchConfig};
use mole_inference::{
    BackendKind, Classifier, ClassifierConfig, TractOptions, TractParallelism, TractPlans,
};

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
    /// Instead of the matrix: what the worker's optional work costs per case on one thread, with
    /// the worker's defaults (tract, `max_batch` 16): test-time augmentation's verdict at batch 1
    /// and 16, and occlusion maps of this grid (e.g. `--extras 5`).
    #[arg(long)]
    extras: Option<usize>,
}

/// Runs the benchmark and prints the report.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(grid) = args.extras {
        return extras(&args, grid);
    }
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

/// Milliseconds per call of `f`, as (p50, mean) over at least `min_runs` calls and `min_time`.
fn time_calls(
    min_runs: usize,
    min_time: Duration,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    f()?; // warm-up (plans, caches)
    let started = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < min_runs || started.elapsed() < min_time {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    samples.sort_by(f64::total_cmp);
    Ok((samples[samples.len() / 2], mean))
}

/// `--extras GRID`: the cost of TTA and of occlusion maps per case, on one thread.
fn extras(args: &BenchArgs, grid: usize) -> anyhow::Result<()> {
    let min_time = Duration::from_secs_f64(args.seconds);
    let min_runs = args.min_runs.max(1);
    let load = |tta: bool| {
        Classifier::load(
            &args.model,
            ClassifierConfig {
                tta,
                max_batch: 16,
                ..ClassifierConfig::default()
            },
        )
        .with_context(|| format!("loading {}", args.model.display()))
    };
    let plain = load(false)?;
    let tta = load(true)?;
    let mut images = Vec::new();
    for entry in std::fs::read_dir(&args.images)
        .with_context(|| format!("reading {}", args.images.display()))?
    {
        let path = entry?.path();
        if let Ok(p) = std::fs::read(&path)
            .map_err(anyhow::Error::from)
            .and_then(|b| plain.preprocess(&b).map_err(anyhow::Error::from))
        {
            images.push(p);
        }
    }
    anyhow::ensure!(!images.is_empty(), "no image in {}", args.images.display());
    while images.len() < 16 {
        images.push(images[images.len() % images.len().max(1)].clone());
    }
    println!(
        "### Optional per-case work of the worker ({})\n",
        plain.model_version()
    );
    println!(
        "{}; tract, 1 thread, max_batch 16; load average before: {}\n",
        bench::machine_description(),
        bench::load_average().map_or_else(|| "n/a".into(), |l| format!("{l:.2}"))
    );
    println!("| work | forward-pass rows | p50 ms per call | mean ms per case |");
    println!("|---|---:|---:|---:|");
    for (name, c) in [("verdict", &plain), ("verdict with TTA (6 views)", &tta)] {
        for batch in [1usize, 16] {
            let part = &images[..batch];
            let (p50, mean) = time_calls(min_runs, min_time, || {
                c.predict(part).map(drop).map_err(Into::into)
            })?;
            let rows = if c.config().tta { 6 * batch } else { batch };
            println!(
                "| {name}, batch {batch} | {rows} | {p50:.1} | {:.1} |",
                mean / batch as f64
            );
        }
    }
    let mut i = 0;
    let (p50, mean) = time_calls(min_runs, min_time, || {
        i += 1;
        plain
            .occlusion(&images[i % images.len()], grid)
            .map(drop)
            .map_err(Into::into)
    })?;
    println!(
        "| occlusion map {grid}×{grid} | {} | {p50:.1} | {mean:.1} |",
        grid * grid + 1
    );
    Ok(())
}
