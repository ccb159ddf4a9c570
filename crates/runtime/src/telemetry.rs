//! Process-wide telemetry shared by the web and worker processes: the Prometheus recorder and
//! secret redaction for logged configuration.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Histogram buckets in seconds: fine below 100 ms where an idle stack lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// The process's Prometheus handle; installs the global `metrics` recorder on first use.
///
/// A web server and workers started in one process (tests, `mole serve --with-worker` later)
/// share it. If another recorder was installed first, metrics go there and this handle renders
/// an empty page rather than failing the service.
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                LATENCY_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("mole_batch_size".into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("bucket lists are non-empty constants");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// A URL with its password replaced by `***`, fit for logs: `postgres://u:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let redacted_userinfo = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        // A lone name before '@' is a user name, not a secret.
        None => userinfo.to_owned(),
    };
    format!(
        "{}{}@{}",
        &url[..rest_start],
        redacted_userinfo,
        &rest[at + 1..]
    )
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_in_urls_are_replaced_and_the_rest_is_kept() {
        assert_eq!(
            redact_url("postgres://mole:s3cret@db.example.com:5432/mole?sslmode=require"),
            "postgres://mole:***@db.example.com:5432/mole?sslmode=require"
        );
        assert_eq!(
            redact_url("rediss://:p4ss@ec2.example.com:6380#insecure"),
            "rediss://:***@ec2.example.com:6380#insecure"
        );
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/postgres"),
            "postgres://postgres@127.0.0.1/postgres"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn an_at_sign_in_the_path_is_not_mistaken_for_credentials() {
        assert_eq!(
            redact_url("postgres://host/db?user=a@b"),
            "postgres://host/db?user=a@b"
        );
    }
}
