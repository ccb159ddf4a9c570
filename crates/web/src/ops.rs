//! Operations endpoints: `/healthz` and `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;
use tracing::warn;

use crate::AppState;

/// Workers whose last self-check is older than this count as gone.
pub(crate) const WORKER_REPORT_MAX_AGE: Duration = Duration::from_secs(45);

/// `GET /healthz`: the database, Redis, and the workers' latest real forward passes.
///
/// Public: it says what works, never why something does not (the log has the errors).
///
/// 503 when the database or Redis fails (this process cannot take uploads); `degraded` with 200
/// when they work but no worker reported a successful forward pass recently (uploads are kept
/// and analysed once a worker is back).
pub async fn healthz(State(app): State<AppState>) -> impl IntoResponse {
    let database = app.store.ping().await.inspect_err(|e| {
        warn!(error = %e, "health check: the database does not answer");
    });
    let redis = app.queue.ping().await.inspect_err(|e| {
        warn!(error = %e, "health check: Redis does not answer");
    });
    let workers = app
        .queue
        .worker_health(WORKER_REPORT_MAX_AGE)
        .await
        .unwrap_or_default();
    let now = mole_jobs::unix_millis();
    let healthy_workers = workers.iter().filter(|w| w.ok).count();
    let (status, code) = if database.is_err() || redis.is_err() {
        ("unhealthy", StatusCode::SERVICE_UNAVAILABLE)
    } else if healthy_workers == 0 {
        ("degraded", StatusCode::OK)
    } else {
        ("ok", StatusCode::OK)
    };
    let body = json!({
        "status": status,
        "database": { "ok": database.is_ok() },
        "redis": { "ok": redis.is_ok() },
        "workers": {
            "healthy": healthy_workers,
            "reports": workers.iter().map(|w| json!({
                "worker": w.worker,
                "model_version": w.model_version,
                "forward_pass_ok": w.ok,
                "forward_pass_ms": w.forward_ms,
                "seconds_ago": now.saturating_sub(w.at_unix_ms) as f64 / 1000.0,
            })).collect::<Vec<_>>(),
        },
    });
    (code, Json(body))
}

/// `GET /metrics`: Prometheus text format. Case counts and queue depth are read at scrape time.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    match app.store.status_counts().await {
        Ok(counts) => {
            for (status, n) in counts.counts {
                metrics::gauge!("mole_cases", "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => warn!(error = %e, "cannot count cases for /metrics"),
    }
    let (open, idle) = app.store.pool_usage();
    let (open, idle) = (f64::from(open), idle as f64);
    metrics::gauge!("mole_db_pool_connections", "state" => "in_use").set(open - idle);
    metrics::gauge!("mole_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("mole_live_watches").set(app.live.watched_cases() as f64);
    match app.queue.depth().await {
        Ok(depth) => metrics::gauge!("mole_queue_depth").set(depth as f64),
        Err(e) => warn!(error = %e, "cannot read the queue depth for /metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        mole_runtime::telemetry::prometheus().render(),
    )
}
