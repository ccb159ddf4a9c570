//! `mole bench-streams`: many open live streams on one web process while uploads go on.
//!
//! 1. Uploads `--streams` small cases with no worker running, and opens one event stream per case
//!    (each waits for its case's first event: `queued`).
//! 2. Starts a `mole worker` (this same binary, with this process's environment), then uploads
//!    `--uploads` photos from `--images`, `--concurrency` at a time, while every stream stays open.
//! 3. Waits until every stream has seen `done` and every upload is done.
//!
//! Throughout, it samples the web process's `/metrics` (open streams, watches, database pool
//! connections in use) and reads the peak resident memory (`VmHWM`) of the web process (`--web-pid`)
//! and of the worker from `/proc`. Prints Markdown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::Value;

use crate::client::percentile;

/// Settings of `mole bench-streams`.
#[derive(Debug, clap::Args)]
pub struct BenchStreamsArgs {
    /// Base URL of a running `mole serve` with no worker on its queue yet.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Process id of that `mole serve` (for its peak memory).
    #[arg(long)]
    pub web_pid: Option<u32>,
    /// Live streams to hold open, one per waiting case.
    #[arg(long, default_value_t = 1000)]
    pub streams: usize,
    /// Photos uploaded while the streams are open.
    #[arg(long, default_value_t = 100)]
    pub uploads: usize,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Folder of JPEG photos for the uploads under load (cycled).
    #[arg(long, default_value = "tests/fixtures/ham10000")]
    pub images: PathBuf,
}

fn jpegs(dir: &PathBuf) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no .jpg images in {}", dir.display());
    }
    paths
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .collect()
}

/// Peak resident set size in MiB of a process (`VmHWM` in /proc), if it can be read.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Uploads a photo without a cookie (each upload is a new uploader, so equal bytes still make
/// distinct cases); returns the case id, or the HTTP status when refused.
async fn upload(client: &reqwest::Client, base: &str, bytes: Vec<u8>) -> Result<String, u16> {
    let part = reqwest::multipart::Part::bytes(bytes).file_name("photo.jpg");
    let response = client
        .post(format!("{base}/cases"))
        .header("accept", "application/json")
        .multipart(reqwest::multipart::Form::new().part("photo", part))
        .send()
        .await
        .map_err(|_| 0u16)?;
    if response.status() != 201 {
        return Err(response.status().as_u16());
    }
    let body: Value = response.json().await.map_err(|_| 0u16)?;
    body["id"].as_str().map(str::to_owned).ok_or(0)
}

/// Follows a case's event stream; `opened` counts the first event, returns once `done` arrives.
async fn follow(
    client: reqwest::Client,
    base: String,
    id: String,
    opened: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let response = client
        .get(format!("{base}/cases/{id}/events"))
        .send()
        .await?;
    if response.status() != 200 {
        bail!("stream of {id} refused: {}", response.status());
    }
    let mut first = true;
    let view = crate::client::follow_to_final(response, |_| {
        if first {
            first = false;
            opened.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await?;
    if view["status"] != "done" {
        bail!("case {id} ended as {}", view["status"]);
    }
    Ok(())
}

/// The largest value seen of each sampled `/metrics` figure.
#[derive(Debug, Default, Clone, Copy)]
struct Peaks {
    streams: f64,
    watches: f64,
    pool_in_use: f64,
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: BenchStreamsArgs) -> anyhow::Result<()> {
    let small = jpegs(&PathBuf::from("tests/fixtures/ham10000"))?;
    let photos = jpegs(&args.images)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()?;
        let base = args.url.trim_end_matches('/').to_owned();

        // Sample /metrics every 200 ms until told to stop.
        let peaks = Arc::new(std::sync::Mutex::new(Peaks::default()));
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (client, base, peaks, stop) =
                (client.clone(), base.clone(), peaks.clone(), sampling.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = client.get(format!("{base}/metrics")).send().await
                        && let Ok(text) = r.text().await
                    {
                        let mut p = peaks.lock().unwrap();
                        if let Some(v) = metric(&text, "mole_sse_streams") {
                            p.streams = p.streams.max(v);
                        }
                        if let Some(v) = metric(&text, "mole_live_watches") {
                            p.watches = p.watches.max(v);
                        }
                        if let Some(v) =
                            metric(&text, "mole_db_pool_connections{state=\"in_use\"}")
                        {
                            p.pool_in_use = p.pool_in_use.max(v);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };

        // 1. Waiting cases and their streams.
        eprintln!("uploading {} waiting cases", args.streams);
        let ids: Vec<Result<String, u16>> = futures::stream::iter(0..args.streams)
            .map(|i| {
                let (client, base, bytes) = (client.clone(), base.clone(), small[i % small.len()].clone());
                async move { upload(&client, &base, bytes).await }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        let ids: Vec<String> = ids
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|status| anyhow::anyhow!("a waiting upload was refused: {status}"))?;
        eprintln!("opening {} streams", ids.len());
        let opened = Arc::new(AtomicU64::new(0));
        let opening = Instant::now();
        let streams: Vec<_> = ids
            .iter()
            .map(|id| {
                tokio::spawn(follow(
                    client.clone(),
                    base.clone(),
                    id.clone(),
                    opened.clone(),
                ))
            })
            .collect();
        while opened.load(Ordering::Relaxed) < ids.len() as u64 {
            if opening.elapsed() > Duration::from_secs(300) {
                bail!("only {} streams opened", opened.load(Ordering::Relaxed));
            }
            if streams.iter().any(|s| s.is_finished()) {
                bail!("a stream ended before the worker started");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let open_s = opening.elapsed().as_secs_f64();
        let web_idle_rss = args.web_pid.and_then(peak_rss_mib);

        // 2. A worker, and uploads under load.
        eprintln!("starting a worker; {} uploads while the streams are open", args.uploads);
        let exe = std::env::current_exe()?;
        let mut worker = std::process::Command::new(exe)
            .arg("worker")
            .stdin(std::process::Stdio::null())
            .spawn()
            .context("starting `mole worker`")?;
        let worker_pid = worker.id();
        let load = Instant::now();
        let results: Vec<(Duration, Result<String, u16>)> = futures::stream::iter(0..args.uploads)
            .map(|i| {
                let (client, base, bytes) =
                    (client.clone(), base.clone(), photos[i % photos.len()].clone());
                async move {
                    let started = Instant::now();
                    let r = upload(&client, &base, bytes).await;
                    (started.elapsed(), r)
                }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        let mut refused = std::collections::BTreeMap::<u16, usize>::new();
        let mut latencies = Vec::new();
        let mut taken = Vec::new();
        for (elapsed, r) in results {
            match r {
                Ok(id) => {
                    latencies.push(elapsed.as_secs_f64() * 1000.0);
                    taken.push(id);
                }
                Err(status) => *refused.entry(status).or_default() += 1,
            }
        }
        latencies.sort_by(f64::total_cmp);

        // 3. Every stream sees its result; every upload completes.
        let mut stream_errors = 0;
        for s in streams {
            if !matches!(s.await, Ok(Ok(()))) {
                stream_errors += 1;
            }
        }
        let streams_done_s = load.elapsed().as_secs_f64();
        let mut unfinished = 0;
        for id in &taken {
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let view: Value = client
                    .get(format!("{base}/api/cases/{id}"))
                    .send()
                    .await?
                    .json()
                    .await?;
                if view["status"] == "done" {
                    break;
                }
                if Instant::now() > deadline {
                    unfinished += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let all_done_s = load.elapsed().as_secs_f64();
        let worker_rss = peak_rss_mib(worker_pid);
        let web_rss = args.web_pid.and_then(peak_rss_mib);
        sampling.store(true, Ordering::Relaxed);
        let _ = sampler.await;
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(worker_pid.to_string())
            .status();
        let _ = worker.wait();
        let p = *peaks.lock().unwrap();

        let mib = |v: Option<f64>| v.map_or("not read".to_owned(), |v| format!("{v:.0} MiB"));
        println!(
            "{} streams held open on one web process, one per waiting case; then {} uploads from \
             {}, {} at a time, with one worker",
            ids.len(),
            args.uploads,
            args.images.display(),
            args.concurrency
        );
        println!();
        println!("| figure | value |");
        println!("|---|---|");
        println!("| streams opened (first event received) | {} in {open_s:.1} s |", ids.len());
        println!("| peak open streams / watched cases (`/metrics`) | {:.0} / {:.0} |", p.streams, p.watches);
        println!("| peak database connections in use, web (`/metrics`, pool of `MOLE_DB_MAX_CONNECTIONS`) | {:.0} |", p.pool_in_use);
        println!("| uploads under load taken (201) | {} of {} |", taken.len(), args.uploads);
        println!("| uploads refused | {refused:?} |");
        println!(
            "| upload latency under load, p50 / p95 / max | {:.0} / {:.0} / {:.0} ms |",
            percentile(&latencies, 50.0),
            percentile(&latencies, 95.0),
            latencies.last().copied().unwrap_or(f64::NAN)
        );
        println!("| streams that saw `done` | {} of {} |", ids.len() - stream_errors, ids.len());
        println!("| uploads under load not done after 300 s | {unfinished} |");
        println!("| worker start → every stream done / every case done | {streams_done_s:.1} s / {all_done_s:.1} s |");
        println!("| web peak RSS with the streams open, before the load | {} |", mib(web_idle_rss));
        println!("| web peak RSS, whole run (`VmHWM`) | {} |", mib(web_rss));
        println!("| worker peak RSS, whole run (`VmHWM`) | {} |", mib(worker_rss));
        if stream_errors > 0 || unfinished > 0 {
            bail!("{stream_errors} streams failed, {unfinished} uploads unfinished");
        }
        Ok(())
    })
}
