//! `mole bench-latency`: upload → result latency of a running stack, measured as a person sees it
//! (POST the photo, then follow the case's event stream until `done`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::client::percentile;

/// Settings of `mole bench-latency`.
#[derive(Debug, clap::Args)]
pub struct BenchLatencyArgs {
    /// Base URL of a running `mole serve` with at least one idle `mole worker`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Folder of JPEG photos to upload (cycled).
    #[arg(long, default_value = "tests/fixtures/ham10000")]
    pub images: PathBuf,
    /// Number of uploads.
    #[arg(long, default_value_t = 40)]
    pub n: usize,
    /// Pause between uploads, so every upload meets an idle stack.
    #[arg(long, default_value_t = 300)]
    pub pause_ms: u64,
}

struct Sample {
    total: Duration,
    post: Duration,
    queue_ms: f64,
    inference_ms: f64,
}

fn summary(name: &str, mut values: Vec<f64>) -> String {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    format!(
        "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
        percentile(&values, 50.0),
        percentile(&values, 90.0),
        values.first().copied().unwrap_or(f64::NAN),
        values.last().copied().unwrap_or(f64::NAN),
    )
}

async fn one(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<Sample> {
    let started = Instant::now();
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
    let response = client
        .post(format!("{base}/cases"))
        .header("accept", "application/json")
        .multipart(reqwest::multipart::Form::new().part("photo", part))
        .send()
        .await?;
    if response.status() != 201 {
        bail!(
            "upload answered {}: {}",
            response.status(),
            response.text().await?
        );
    }
    let body: Value = response.json().await?;
    let post = started.elapsed();
    let id = body["id"].as_str().context("no id")?.to_owned();
    let stream = client
        .get(format!("{base}/cases/{id}/events"))
        .send()
        .await?;
    let view = crate::client::follow_to_final(stream, |_| {}).await?;
    // A refused photo (one committed fixture is) is a final answer too; it has no model timings.
    if view["status"] != "done" && view["status"] != "refused" {
        bail!("case {id} ended as {}", view["status"]);
    }
    let result = &view["result"];
    Ok(Sample {
        total: started.elapsed(),
        post,
        queue_ms: result["queue_ms"].as_f64().unwrap_or(f64::NAN),
        inference_ms: result["inference_ms"].as_f64().unwrap_or(f64::NAN),
    })
}

/// Runs the benchmark and prints a Markdown table.
pub fn run(args: BenchLatencyArgs) -> anyhow::Result<()> {
    let mut images: Vec<PathBuf> = std::fs::read_dir(&args.images)
        .with_context(|| format!("reading {}", args.images.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    images.sort();
    if images.is_empty() {
        bail!("no .jpg images in {}", args.images.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        // One unmeasured upload, so connection set-up and first-use costs are not counted.
        let warm = std::fs::read(&images[0])?;
        one(&client, &args.url, "warm-up.jpg", warm).await?;
        let mut samples = Vec::with_capacity(args.n);
        for i in 0..args.n {
            tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
            let path = &images[i % images.len()];
            let bytes = std::fs::read(path)?;
            samples.push(one(&client, &args.url, "photo.jpg", bytes).await?);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{} uploads against {}, one at a time, {} ms apart",
            args.n, args.url, args.pause_ms
        );
        println!();
        println!("| ms | p50 | p90 | min | max |");
        println!("|---|---|---|---|---|");
        println!(
            "{}",
            summary(
                "upload → result seen on the event stream",
                samples.iter().map(|s| ms(s.total)).collect()
            )
        );
        println!(
            "{}",
            summary(
                "POST /cases (validate, strip, store, enqueue)",
                samples.iter().map(|s| ms(s.post)).collect()
            )
        );
        println!(
            "{}",
            summary(
                "queue_ms (stored → batch starts)",
                samples.iter().map(|s| s.queue_ms).collect()
            )
        );
        println!(
            "{}",
            summary(
                "inference_ms (the model's forward pass)",
                samples.iter().map(|s| s.inference_ms).collect()
            )
        );
        Ok(())
    })
}
