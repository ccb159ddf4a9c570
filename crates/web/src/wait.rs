//! The honest wait: what a waiting case page says about the queue ahead of it (position, an
//! expected time from the workers' recent pace) and, when no worker has reported for a while,
//! that the analysis is delayed and the photo is safe.
//!
//! Served as JSON at `/cases/{id}/wait` (the page asks every few seconds while it waits) and
//! rendered into the page itself (without JavaScript the page reloads itself).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mole_storage::{CaseStatus, QueueFigures};
use serde::Serialize;

use crate::AppState;
use crate::access::CaseAccess;
use crate::error::AppError;
use crate::i18n::Tr;
use crate::ops::WORKER_REPORT_MAX_AGE;

/// A case's wait, in figures and in words.
#[derive(Debug, Clone, Serialize)]
pub struct WaitView {
    /// The case's status (`queued`, `processing`, or a final one: then nothing is said).
    pub status: &'static str,
    /// Photos queued before this one.
    pub ahead: i64,
    /// Expected seconds until the result, from the recent pace (none without recent cases).
    pub expected_seconds: Option<f64>,
    /// Seconds since the photo was sent.
    pub waited_seconds: f64,
    /// Workers that reported a working model recently.
    pub workers: usize,
    /// True when no worker is there to analyse the photo: the page says the analysis is delayed.
    pub delayed: bool,
    /// What the page says (empty once the case is final).
    pub text: String,
}

/// Waits longer than this many times the expected time (and at least [`SLOW_FLOOR_SECS`]) are
/// called slower than usual.
const SLOW_FACTOR: f64 = 3.0;
const SLOW_FLOOR_SECS: f64 = 30.0;

impl WaitView {
    /// Reads the queue and the workers' health for the case of `access`.
    pub async fn of(app: &AppState, access: &CaseAccess, t: Tr) -> Result<Self, AppError> {
        let case = &access.state.case;
        let waited_seconds = (chrono::Utc::now() - case.created_at)
            .to_std()
            .map_or(0.0, |d| d.as_secs_f64());
        if !matches!(case.status, CaseStatus::Queued | CaseStatus::Processing) {
            return Ok(Self::compose(
                case.status,
                QueueFigures::default(),
                waited_seconds,
                0,
                t,
            ));
        }
        let figures = app.store.queue_figures(case.id).await?;
        // A Redis that does not answer counts as no worker: the page then says the analysis
        // is delayed, which is the truth as far as this process can tell.
        let workers = app
            .queue
            .worker_health(WORKER_REPORT_MAX_AGE)
            .await
            .map(|w| w.iter().filter(|w| w.ok).count())
            .unwrap_or(0);
        Ok(Self::compose(
            case.status,
            figures,
            waited_seconds,
            workers,
            t,
        ))
    }

    /// The words for the figures (no I/O; see the tests).
    pub fn compose(
        status: CaseStatus,
        figures: QueueFigures,
        waited_seconds: f64,
        workers: usize,
        t: Tr,
    ) -> Self {
        let expected = figures.expected_secs();
        let waiting = matches!(status, CaseStatus::Queued | CaseStatus::Processing);
        let delayed = waiting && workers == 0;
        let text = if !waiting {
            String::new()
        } else if delayed {
            t.t("wait-delayed")
        } else {
            let mut text = match status {
                CaseStatus::Processing => t.t("wait-processing"),
                _ => t.t1("wait-ahead", "n", figures.ahead),
            };
            if let Some(secs) = expected {
                text.push(' ');
                text.push_str(&t.t1("wait-expected", "wait", duration_words(secs, t)));
                if waited_seconds > (SLOW_FACTOR * secs).max(SLOW_FLOOR_SECS) {
                    text.push(' ');
                    text.push_str(&t.t("wait-slow"));
                }
            }
            text
        };
        Self {
            status: status.as_str(),
            ahead: figures.ahead,
            expected_seconds: expected,
            waited_seconds,
            workers,
            delayed,
            text,
        }
    }
}

/// "a few seconds", "about 25 seconds", "about 3 minutes".
fn duration_words(secs: f64, t: Tr) -> String {
    if secs < 10.0 {
        t.t("wait-few-seconds")
    } else if secs < 90.0 {
        t.t1("wait-seconds", "n", ((secs / 5.0).round() * 5.0) as u64)
    } else {
        t.t1("wait-minutes", "n", (secs / 60.0).round().max(2.0) as u64)
    }
}

/// `GET /cases/{id}/wait`: the wait as JSON (anyone who may see the verdict), never cached.
pub async fn wait(
    State(app): State<AppState>,
    t: Tr,
    access: CaseAccess,
) -> Result<Response, AppError> {
    let view = WaitView::of(&app, &access, t).await?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(view),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(ahead: i64, typical: Option<f64>) -> QueueFigures {
        QueueFigures {
            ahead,
            recent_finished: 60,
            recent_span_secs: 60.0,
            typical_secs: typical,
        }
    }

    #[test]
    fn without_a_worker_the_page_says_the_analysis_is_delayed_and_the_photo_safe() {
        let v = WaitView::compose(
            CaseStatus::Queued,
            figures(0, Some(1.0)),
            3.0,
            0,
            Tr::default(),
        );
        assert!(v.delayed);
        assert!(v.text.contains("delayed") && v.text.contains("stored safely"));
    }

    #[test]
    fn with_workers_the_page_gives_the_position_and_the_expected_time() {
        let v = WaitView::compose(
            CaseStatus::Queued,
            figures(29, Some(1.0)),
            3.0,
            2,
            Tr::default(),
        );
        assert!(!v.delayed);
        assert_eq!(v.expected_seconds, Some(30.0));
        assert!(v.text.contains("29 photos are ahead"), "{}", v.text);
        assert!(v.text.contains("about 30 seconds"), "{}", v.text);
        let next = WaitView::compose(
            CaseStatus::Queued,
            figures(0, Some(1.0)),
            0.5,
            1,
            Tr::default(),
        );
        assert!(next.text.contains("next") && next.text.contains("a few seconds"));
        let slow = WaitView::compose(
            CaseStatus::Queued,
            figures(0, Some(2.0)),
            95.0,
            1,
            Tr::default(),
        );
        assert!(slow.text.contains("longer than usual"), "{}", slow.text);
    }

    #[test]
    fn without_recent_cases_no_time_is_promised_and_final_cases_say_nothing() {
        let v = WaitView::compose(CaseStatus::Queued, figures(2, None), 3.0, 1, Tr::default());
        assert!(v.expected_seconds.is_none() && !v.text.contains("Expected"));
        let done = WaitView::compose(
            CaseStatus::Done,
            figures(0, Some(1.0)),
            3.0,
            0,
            Tr::default(),
        );
        assert!(done.text.is_empty() && !done.delayed);
    }

    #[test]
    fn durations_are_said_in_round_words() {
        let t = Tr::default();
        assert_eq!(duration_words(3.0, t), "a few seconds");
        assert_eq!(duration_words(23.0, t), "about 25 seconds");
        assert_eq!(duration_words(200.0, t), "about 3 minutes");
        let fr = Tr::new(crate::i18n::Lang::Fr);
        assert_eq!(duration_words(23.0, fr), "environ 25 secondes");
    }
}
