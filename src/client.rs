//! What the benchmark tools do as a browser does: follow a case's event stream to its final
//! state; and the percentile they all report.

use anyhow::bail;
use futures::StreamExt;
use serde_json::Value;

/// Reads a case's event stream (`GET /cases/{id}/events`, already answered 200) until the case
/// is final (`done`, `failed`, `refused`, `deleted`) and returns that last case JSON;
/// `on_event` sees every event's JSON first. An error when the stream ends before.
pub async fn follow_to_final(
    response: reqwest::Response,
    mut on_event: impl FnMut(&Value),
) -> anyhow::Result<Value> {
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(chunk) = bytes.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let view: Value = serde_json::from_str(data.trim_start())?;
            on_event(&view);
            if is_final(&view) {
                return Ok(view);
            }
        }
    }
    bail!("the event stream ended before the case was final")
}

/// Whether a case JSON is in a final state.
pub fn is_final(view: &Value) -> bool {
    matches!(
        view["status"].as_str(),
        Some("done" | "failed" | "refused" | "deleted")
    )
}

/// The `p`-th percentile (nearest rank) of sorted values; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
