//! `mole loadtest`: throughput at saturation of a running stack, closed loop, as people use it.
//!
//! C clients each upload a photo and wait for its result, then send the next, until N uploads are
//! done. Against mole (`--target mole`) a client POSTs `/cases` and follows the case's event stream
//! to its final state, as the page does (polling the JSON if the stream is refused); against the
//! reference Python app (`--target python`, scripts/reference-app) it POSTs `/predict`, whose answer
//! is the result. Both honour 429/503 with `Retry-After`. It prints throughput, upload → result
//! percentiles, the batch-size histogram the workers' `/metrics` saw during the run, cases lost (an
//! acknowledged upload without a final state), and the peak resident memory of the processes named
//! with `--pid` (from /proc, sampled every 100 ms).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::client::percentile;

/// Which kind of service is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// mole: POST /cases, then the event stream until the final state.
    Mole,
    /// The reference Python app: POST /predict answers with the result.
    Python,
}

/// Settings of `mole loadtest`.
#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// Base URL of the running service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// What runs there.
    #[arg(long, value_enum, default_value_t = Target::Mole)]
    pub target: Target,
    /// Folder of JPEG photos to upload (cycled; each mole upload comes from a new browser, so
    /// none is a re-submission).
    #[arg(long, default_value = "tests/fixtures/ham10000")]
    pub images: PathBuf,
    /// Uploads in all.
    #[arg(long, default_value_t = 500)]
    pub n: usize,
    /// Concurrent clients (each waits for its result before sending the next).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Unmeasured uploads first (connections, plans, caches).
    #[arg(long, default_value_t = 20)]
    pub warm_up: usize,
    /// A worker's /metrics URL (repeatable): the batch sizes of the run are read from them.
    #[arg(long = "worker-metrics")]
    pub worker_metrics: Vec<String>,
    /// `name=PID` of a process whose peak resident memory and CPU time are reported (repeatable).
    #[arg(long = "pid", value_parser = parse_pid)]
    pub pids: Vec<(String, u32)>,
    /// A command name (as in /proc/PID/comm, e.g. `postgres`, `redis-server`) whose processes'
    /// CPU time during the run is reported, summed (repeatable).
    #[arg(long = "comm")]
    pub comms: Vec<String>,
    /// Seconds an upload may take to reach its result before it counts as lost.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// A label for the printed row (e.g. "mole, 2 workers").
    #[arg(long, default_value = "")]
    pub label: String,
}

fn parse_pid(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected name=PID"))?;
    let pid = pid.parse().map_err(|e| format!("{s:?}: {e}"))?;
    Ok((name.to_owned(), pid))
}

/// How one upload ended.
enum Outcome {
    /// Its result arrived (done, or refused: a final answer either way).
    Result(Duration),
    /// Acknowledged, then failed or never finished.
    Lost(String),
}

struct Counters {
    retries: AtomicUsize,
    polled: AtomicUsize,
}

/// Sleeps as long as the answer's `Retry-After` asks (1 s when it does not say).
async fn back_off(response: &reqwest::Response) {
    let secs = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(1.0);
    tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.05, 30.0))).await;
}

fn form(bytes: &[u8]) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("photo.jpg");
    reqwest::multipart::Form::new().part("photo", part)
}

async fn one_python(
    client: &reqwest::Client,
    base: &str,
    bytes: &[u8],
    counters: &Counters,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    loop {
        let response = client
            .post(format!("{base}/predict"))
            .multipart(form(bytes))
            .send()
            .await?;
        match response.status().as_u16() {
            200 => {
                let body: Value = response.json().await?;
                if body["p_malignant"].as_f64().is_none() {
                    bail!("the reference app answered without a result: {body}");
                }
                return Ok(Outcome::Result(started.elapsed()));
            }
            429 | 503 => {
                counters.retries.fetch_add(1, Ordering::Relaxed);
                back_off(&response).await;
            }
            other => bail!("/predict answered {other}: {}", response.text().await?),
        }
    }
}

async fn one_mole(
    client: &reqwest::Client,
    base: &str,
    bytes: &[u8],
    counters: &Counters,
    timeout: Duration,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let id = loop {
        let response = client
            .post(format!("{base}/cases"))
            .header("accept", "application/json")
            .multipart(form(bytes))
            .send()
            .await?;
        match response.status().as_u16() {
            200 | 201 => {
                let body: Value = response.json().await?;
                break body["id"].as_str().context("no case id")?.to_owned();
            }
            429 | 503 => {
                counters.retries.fetch_add(1, Ordering::Relaxed);
                back_off(&response).await;
            }
            other => bail!("upload answered {other}: {}", response.text().await?),
        }
    };
    // Acknowledged: from here on, not reaching a final state is a lost case.
    let finished = tokio::time::timeout(timeout, follow(client, base, &id, counters)).await;
    Ok(match finished {
        Ok(Ok(status)) if status == "done" || status == "refused" => {
            Outcome::Result(started.elapsed())
        }
        Ok(Ok(status)) => Outcome::Lost(format!("case {id} ended {status}")),
        Ok(Err(e)) => Outcome::Lost(format!("case {id}: {e:#}")),
        Err(_) => Outcome::Lost(format!("case {id}: no result within {timeout:?}")),
    })
}

/// Follows a case to its final state: the event stream, or the JSON when the stream is refused.
async fn follow(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    counters: &Counters,
) -> anyhow::Result<String> {
    let stream = client
        .get(format!("{base}/cases/{id}/events"))
        .send()
        .await?;
    if stream.status().is_success()
        && let Ok(view) = crate::client::follow_to_final(stream, |_| {}).await
    {
        return Ok(view["status"].as_str().unwrap_or("?").to_owned());
    }
    // Refused (429 at the stream cap) or cut: poll as the page does.
    counters.polled.fetch_add(1, Ordering::Relaxed);
    loop {
        let response = client.get(format!("{base}/api/cases/{id}")).send().await?;
        if response.status().is_success() {
            let view: Value = response.json().await?;
            if let Some(s @ ("done" | "failed" | "refused" | "deleted")) = view["status"].as_str() {
                return Ok(s.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `mole_batch_size` histogram of every worker: bucket upper bound → cumulative count.
async fn batch_buckets(
    client: &reqwest::Client,
    urls: &[String],
) -> anyhow::Result<BTreeMap<u64, f64>> {
    let mut total: BTreeMap<u64, f64> = BTreeMap::new();
    for url in urls {
        let text = client.get(url).send().await?.text().await?;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("mole_batch_size_bucket{le=\"") else {
                continue;
            };
            let Some((le, value)) = rest.split_once("\"} ") else {
                continue;
            };
            let le = if le == "+Inf" {
                u64::MAX
            } else {
                le.parse::<f64>().map(|v| v as u64).unwrap_or(u64::MAX)
            };
            *total.entry(le).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok(total)
}

/// Peak resident memory so far (VmHWM) and current (VmRSS) of a process, in MiB.
fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU time (user + system) a process has used so far, in seconds; `None` when it is gone.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space on every architecture.
    Some(ticks / 100.0)
}

/// CPU seconds used so far by each watched process: the `--pid` ones by name, the `--comm` ones
/// summed per command name (processes that exit during the run take their time with them), and
/// this load generator itself.
fn cpu_snapshot(pids: &[(String, u32)], comms: &[String]) -> BTreeMap<String, f64> {
    let mut used = BTreeMap::new();
    for (name, pid) in pids {
        if let Some(s) = cpu_seconds(&pid.to_string()) {
            used.insert(name.clone(), s);
        }
    }
    if !comms.is_empty()
        && let Ok(entries) = std::fs::read_dir("/proc")
    {
        for entry in entries.flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
                continue;
            };
            if let Some(name) = comms.iter().find(|c| c.as_str() == comm.trim_end())
                && let Some(s) = cpu_seconds(&pid)
            {
                *used.entry(name.clone()).or_default() += s;
            }
        }
    }
    if let Some(s) = cpu_seconds("self") {
        used.insert("loadtest".to_owned(), s);
    }
    used
}

/// Runs the load and prints the results (Markdown).
pub fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.n == 0 {
        bail!("--clients and --n must be at least 1");
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&args.images)
        .with_context(|| format!("reading {}", args.images.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no .jpg photos in {}", args.images.display());
    }
    let images: Arc<Vec<Vec<u8>>> = Arc::new(
        paths
            .iter()
            .map(std::fs::read)
            .collect::<Result<_, _>>()
            .context("reading the photos")?,
    );
    let mean_bytes = images.iter().map(Vec::len).sum::<usize>() / images.len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(args.clients * 2)
            .build()?;
        let counters = Arc::new(Counters {
            retries: AtomicUsize::new(0),
            polled: AtomicUsize::new(0),
        });
        let timeout = Duration::from_secs(args.timeout_secs);
        let one = {
            let (client, base, counters) = (client.clone(), args.url.clone(), counters.clone());
            let target = args.target;
            move |bytes: Vec<u8>| {
                let (client, base, counters) = (client.clone(), base.clone(), counters.clone());
                async move {
                    match target {
                        Target::Mole => one_mole(&client, &base, &bytes, &counters, timeout).await,
                        Target::Python => one_python(&client, &base, &bytes, &counters).await,
                    }
                }
            }
        };
        // Warm-up, unmeasured, with the same concurrency.
        let warm: Vec<_> = (0..args.warm_up)
            .map(|i| one(images[i % images.len()].clone()))
            .collect();
        for r in futures::future::join_all(warm).await {
            if let Outcome::Lost(why) = r? {
                bail!("warm-up upload lost: {why}");
            }
        }
        counters.retries.store(0, Ordering::Relaxed);
        counters.polled.store(0, Ordering::Relaxed);

        let before = batch_buckets(&client, &args.worker_metrics).await?;
        let peaks: Arc<Mutex<BTreeMap<String, (f64, f64)>>> = Arc::default();
        let sampler = {
            let (pids, peaks) = (args.pids.clone(), peaks.clone());
            tokio::spawn(async move {
                loop {
                    for (name, pid) in &pids {
                        if let Some((hwm, rss)) = memory_mib(*pid) {
                            let mut peaks = peaks.lock().await;
                            let entry = peaks.entry(name.clone()).or_insert((0.0, 0.0));
                            entry.0 = entry.0.max(hwm);
                            entry.1 = entry.1.max(rss);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let cpu_before = cpu_snapshot(&args.pids, &args.comms);
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let clients: Vec<_> = (0..args.clients)
            .map(|_| {
                let (next, images, one) = (next.clone(), images.clone(), one.clone());
                let n = args.n;
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return outcomes;
                        }
                        let bytes = images[i % images.len()].clone();
                        outcomes.push(
                            one(bytes)
                                .await
                                .unwrap_or_else(|e| Outcome::Lost(format!("{e:#}"))),
                        );
                    }
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(args.n);
        for c in clients {
            outcomes.extend(c.await?);
        }
        let elapsed = started.elapsed();
        let cpu_after = cpu_snapshot(&args.pids, &args.comms);
        sampler.abort();
        let after = batch_buckets(&client, &args.worker_metrics).await?;

        let mut latencies: Vec<f64> = Vec::new();
        let mut lost = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Result(d) => latencies.push(d.as_secs_f64() * 1000.0),
                Outcome::Lost(why) => lost.push(why),
            }
        }
        latencies.sort_by(f64::total_cmp);
        let label = if args.label.is_empty() {
            format!("{:?}", args.target).to_lowercase()
        } else {
            args.label.clone()
        };
        println!(
            "| {label} | {} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {} | {} |",
            args.n,
            args.clients,
            latencies.len() as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 50.0),
            percentile(&latencies, 95.0),
            percentile(&latencies, 99.0),
            lost.len(),
            counters.retries.load(Ordering::Relaxed),
        );
        eprintln!(
            "{label}: {} results in {:.1} s, photos of {} KB on average; {} lost; {} retries after 429/503; {} streams fell back to polling",
            latencies.len(),
            elapsed.as_secs_f64(),
            mean_bytes / 1024,
            lost.len(),
            counters.retries.load(Ordering::Relaxed),
            counters.polled.load(Ordering::Relaxed),
        );
        for why in lost.iter().take(5) {
            eprintln!("  lost: {why}");
        }
        if !args.worker_metrics.is_empty() {
            // Cumulative buckets → cases per batch-size range during the run.
            let mut histogram = Vec::new();
            let mut below = 0.0;
            for (le, count) in &after {
                let count = count - before.get(le).copied().unwrap_or(0.0);
                let here = count - below;
                below = count;
                if here > 0.0 {
                    let bound = if *le == u64::MAX { "larger".to_owned() } else { format!("≤{le}") };
                    histogram.push(format!("{bound}: {here:.0}"));
                }
            }
            eprintln!("  batches by size: {}", histogram.join(", "));
            println!("<!-- {label} batches by size: {} -->", histogram.join(", "));
        }
        for (name, (hwm, rss)) in peaks.lock().await.iter() {
            eprintln!("  {name}: peak RSS {hwm:.0} MiB (highest sampled {rss:.0} MiB)");
            println!("<!-- {label} {name}: peak RSS {hwm:.0} MiB -->");
        }
        if !latencies.is_empty() {
            // Where the CPU went, per result: the cost of a case in each process.
            let per_result = |s: f64| s * 1000.0 / latencies.len() as f64;
            let mut parts = Vec::new();
            let mut total = 0.0;
            for (name, after) in &cpu_after {
                let used = after - cpu_before.get(name).copied().unwrap_or(0.0);
                total += used;
                parts.push(format!("{name} {:.1}", per_result(used)));
            }
            let line = format!(
                "CPU ms per result: {} (sum {:.1}; wall {:.1} ms × {} cores)",
                parts.join(", "),
                per_result(total),
                per_result(elapsed.as_secs_f64()),
                std::thread::available_parallelism().map_or(1, usize::from),
            );
            eprintln!("  {line}");
            println!("<!-- {label} {line} -->");
        }
        if !lost.is_empty() {
            bail!("{} of {} uploads were lost", lost.len(), args.n);
        }
        Ok(())
    })
}
