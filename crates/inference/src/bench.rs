//! `mole bench-model`: throughput and latency of the backends, and the cost of preprocessing.
//!
//! Wall-clock measurements on real images; the binary only parses flags and prints the report.

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::backend::BackendKind;
use crate::backend::tract::TractOptions;
use crate::classifier::{Classifier, ClassifierConfig};
use crate::decode::{DecodeLimits, decode_image};
use crate::error::InferenceError;
use crate::preprocess::{Normalization, model_view, normalize_chw};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The model card.
    pub card: PathBuf,
    /// A folder of images (JPEG/PNG/...) used as inputs.
    pub images: PathBuf,
    /// Backends to measure, in order.
    pub backends: Vec<BackendKind>,
    /// Batch sizes (images per forward pass).
    pub batch_sizes: Vec<usize>,
    /// Threads per forward pass.
    pub threads: Vec<usize>,
    /// Also measure this many concurrent callers sharing one single-threaded classifier (0 = skip).
    pub parallel_callers: usize,
    /// Minimum measuring time per configuration.
    pub min_time: Duration,
    /// Minimum forward passes per configuration.
    pub min_runs: usize,
    /// Most images to decode for the preprocessing measurement.
    pub max_images: usize,
    /// libonnxruntime for the `ort` backend (`None`: `ORT_DYLIB_PATH`).
    pub ort_library: Option<PathBuf>,
    /// tract tuning under test.
    pub tract: TractOptions,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            card: PathBuf::from(crate::DEFAULT_CARD),
            images: PathBuf::from("tests/fixtures/ham10000"),
            backends: vec![BackendKind::Tract],
            batch_sizes: vec![1, 8, 32],
            threads: vec![1, 2],
            parallel_callers: 0,
            min_time: Duration::from_secs(3),
            min_runs: 10,
            max_images: 200,
            ort_library: None,
            tract: TractOptions::default(),
        }
    }
}

/// Summary of a set of durations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile, milliseconds.
    pub p95_ms: f64,
    /// Mean, milliseconds.
    pub mean_ms: f64,
}

impl Latency {
    /// Summarises `samples` (must not be empty).
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let pick = |q: f64| {
            let i = ((samples.len() - 1) as f64 * q).round() as usize;
            samples[i].as_secs_f64() * 1e3
        };
        let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64;
        Self {
            p50_ms: pick(0.5),
            p95_ms: pick(0.95),
            mean_ms: mean * 1e3,
        }
    }
}

/// Cost of turning files into tensors.
#[derive(Debug, Clone)]
pub struct PreprocessReport {
    /// Images measured.
    pub images: usize,
    /// Mean decoded size (megapixels).
    pub mean_megapixels: f64,
    /// Decode (format sniffing, decoding, EXIF orientation, RGB8).
    pub decode: Latency,
    /// Centre crop + resize to S×S.
    pub resize: Latency,
    /// Normalisation to CHW f32.
    pub normalize: Latency,
    /// All of it.
    pub total: Latency,
}

/// One measured configuration.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// Backend name.
    pub backend: &'static str,
    /// Threads per forward pass.
    pub threads: usize,
    /// Concurrent callers (1 unless measuring parallel use).
    pub callers: usize,
    /// Images per forward pass.
    pub batch: usize,
    /// First pass at this size (plan building, allocation), milliseconds.
    pub first_pass_ms: f64,
    /// Forward passes measured.
    pub runs: usize,
    /// Images per second over the measuring window (all callers together).
    pub images_per_s: f64,
    /// Per forward pass.
    pub latency: Latency,
}

/// Everything `mole bench-model` measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// CPU model and core count.
    pub machine: String,
    /// 1-minute load average before and after the run (a busy machine lowers the numbers).
    pub load_before: Option<f64>,
    /// 1-minute load average after the run.
    pub load_after: Option<f64>,
    /// Model version measured.
    pub model: String,
    /// Model input side.
    pub input_size: u32,
    /// Preprocessing cost.
    pub preprocess: PreprocessReport,
    /// Forward-pass measurements.
    pub rows: Vec<BenchRow>,
}

/// CPU model name and number of online CPUs, from /proc/cpuinfo.
pub fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{model}, {cpus} CPUs")
}

/// The 1-minute load average, from /proc/loadavg.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn image_files(dir: &Path, max: usize) -> Result<Vec<PathBuf>, InferenceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| InferenceError::ModelIo {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "webp" | "tif" | "tiff" | "bmp" | "gif"
                )
            })
        })
        .collect();
    files.sort();
    files.truncate(max);
    if files.is_empty() {
        return Err(InferenceError::Config {
            reason: format!("no images in {}", dir.display()),
        });
    }
    Ok(files)
}

/// Decodes and preprocesses every image, timing each step; returns the tensors too.
fn measure_preprocessing(
    files: &[PathBuf],
    size: u32,
    norm: &Normalization,
) -> Result<(PreprocessReport, Vec<Vec<f32>>), InferenceError> {
    let limits = DecodeLimits::default();
    let (mut decode, mut resize, mut normalize, mut total) = (vec![], vec![], vec![], vec![]);
    let mut tensors = Vec::with_capacity(files.len());
    let mut megapixels = 0.0;
    for file in files {
        let bytes = std::fs::read(file).map_err(|source| InferenceError::ModelIo {
            path: file.clone(),
            source,
        })?;
        let t0 = Instant::now();
        let image = decode_image(&bytes, &limits)?;
        let t1 = Instant::now();
        megapixels += f64::from(image.width()) * f64::from(image.height()) / 1e6;
        let resized = model_view(&image, size);
        let t2 = Instant::now();
        let tensor = normalize_chw(&resized, norm);
        let t3 = Instant::now();
        decode.push(t1 - t0);
        resize.push(t2 - t1);
        normalize.push(t3 - t2);
        total.push(t3 - t0);
        tensors.push(tensor);
    }
    let report = PreprocessReport {
        images: files.len(),
        mean_megapixels: megapixels / files.len() as f64,
        decode: Latency::of(&mut decode),
        resize: Latency::of(&mut resize),
        normalize: Latency::of(&mut normalize),
        total: Latency::of(&mut total),
    };
    Ok((report, tensors))
}

/// A batch of `n` tensors taken in turn from `tensors`, starting at `offset`.
fn batch_input(tensors: &[Vec<f32>], n: usize, offset: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| tensors[(offset + i) % tensors.len()].iter().copied())
        .collect()
}

/// Times forward passes of `batch` images by `callers` threads sharing `classifier`.
fn measure_forward(
    classifier: &Classifier,
    tensors: &[Vec<f32>],
    batch: usize,
    callers: usize,
    cfg: &BenchConfig,
) -> Result<BenchRow, InferenceError> {
    let inputs: Vec<Vec<f32>> = (0..callers)
        .map(|c| batch_input(tensors, batch, c * batch))
        .collect();
    // First pass: builds the plan for this size (tract) and allocates; reported separately.
    let t = Instant::now();
    classifier.forward(&inputs[0], batch)?;
    let first_pass_ms = t.elapsed().as_secs_f64() * 1e3;
    for input in &inputs {
        classifier.forward(input, batch)?;
    }
    let barrier = Barrier::new(callers);
    let start = Instant::now();
    let per_caller: Vec<Result<Vec<Duration>, InferenceError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .iter()
            .map(|input| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let begun = Instant::now();
                    let mut samples = Vec::new();
                    while samples.len() < cfg.min_runs || begun.elapsed() < cfg.min_time {
                        let t = Instant::now();
                        classifier.forward(input, batch)?;
                        samples.push(t.elapsed());
                    }
                    Ok(samples)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(InferenceError::Config {
                        reason: "benchmark thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut samples = Vec::new();
    for r in per_caller {
        samples.extend(r?);
    }
    let runs = samples.len();
    Ok(BenchRow {
        backend: classifier.backend_name(),
        threads: classifier.config().threads,
        callers,
        batch,
        first_pass_ms,
        runs,
        images_per_s: (runs * batch) as f64 / elapsed,
        latency: Latency::of(&mut samples),
    })
}

/// Runs the whole benchmark; `progress` is told about each finished row.
pub fn run(
    cfg: &BenchConfig,
    mut progress: impl FnMut(&BenchRow),
) -> Result<BenchReport, InferenceError> {
    let load_before = load_average();
    let card = crate::card::ModelCard::load(&cfg.card)?;
    let files = image_files(&cfg.images, cfg.max_images)?;
    let (preprocess, tensors) =
        measure_preprocessing(&files, card.input_size(), &Normalization::from_card(&card))?;
    let mut rows = Vec::new();
    for &backend in &cfg.backends {
        for &threads in &cfg.threads {
            let config = ClassifierConfig {
                backend,
                threads,
                max_batch: cfg.batch_sizes.iter().copied().max().unwrap_or(1),
                ort_library: cfg.ort_library.clone(),
                tract: cfg.tract,
                ..ClassifierConfig::default()
            };
            let classifier = Classifier::from_card(card.clone(), config)?;
            for &batch in &cfg.batch_sizes {
                let row = measure_forward(&classifier, &tensors, batch, 1, cfg)?;
                progress(&row);
                rows.push(row);
            }
        }
        if cfg.parallel_callers > 1 {
            let config = ClassifierConfig {
                backend,
                threads: 1,
                max_batch: cfg.batch_sizes.iter().copied().max().unwrap_or(1),
                ort_library: cfg.ort_library.clone(),
                tract: cfg.tract,
                ..ClassifierConfig::default()
            };
            let classifier = Classifier::from_card(card.clone(), config)?;
            for &batch in &cfg.batch_sizes {
                let row = measure_forward(&classifier, &tensors, batch, cfg.parallel_callers, cfg)?;
                progress(&row);
                rows.push(row);
            }
        }
    }
    Ok(BenchReport {
        machine: machine_description(),
        load_before,
        load_after: load_average(),
        model: card.model_version(),
        input_size: card.input_size(),
        preprocess,
        rows,
    })
}

impl BenchReport {
    /// The report as Markdown tables (what BENCHMARKS.md quotes).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let load = |l: Option<f64>| l.map_or("?".into(), |l| format!("{l:.2}"));
        s += &format!(
            "Model `{}` ({}×{} input) on {}; 1-min load average {} before, {} after.\n\n",
            self.model,
            self.input_size,
            self.input_size,
            self.machine,
            load(self.load_before),
            load(self.load_after)
        );
        let p = &self.preprocess;
        s += &format!(
            "Preprocessing, one thread, {} images of {:.2} MP on average (ms per image):\n\n",
            p.images, p.mean_megapixels
        );
        s += "| step | p50 | p95 | mean | images/s |\n|---|---:|---:|---:|---:|\n";
        for (name, l) in [
            ("decode (+EXIF, RGB8)", &p.decode),
            ("centre crop + resize", &p.resize),
            ("normalise to CHW f32", &p.normalize),
            ("total", &p.total),
        ] {
            s += &format!(
                "| {name} | {:.2} | {:.2} | {:.2} | {:.0} |\n",
                l.p50_ms,
                l.p95_ms,
                l.mean_ms,
                1e3 / l.mean_ms
            );
        }
        s += "\nForward passes (latency per pass, ms):\n\n";
        s += "| backend | threads | callers | batch | images/s | p50 | p95 | first pass |\n";
        s += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
        for r in &self.rows {
            s += &format!(
                "| {} | {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.0} |\n",
                r.backend,
                r.threads,
                r.callers,
                r.batch,
                r.images_per_s,
                r.latency.p50_ms,
                r.latency.p95_ms,
                r.first_pass_ms
            );
        }
        let ratios: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.backend == "tract")
            .filter_map(|t| {
                let o = self.rows.iter().find(|o| {
                    o.backend == "onnxruntime"
                        && (o.threads, o.callers, o.batch) == (t.threads, t.callers, t.batch)
                })?;
                Some(format!(
                    "| {} | {} | {} | {:.2} |",
                    t.threads,
                    t.callers,
                    t.batch,
                    t.images_per_s / o.images_per_s
                ))
            })
            .collect();
        if !ratios.is_empty() {
            s += "\nimages/s, tract ÷ onnxruntime:\n\n| threads | callers | batch | ratio |\n|---:|---:|---:|---:|\n";
            s += &ratios.join("\n");
            s += "\n";
        }
        s
    }
}
