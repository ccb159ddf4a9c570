//! "My cases": the cases this browser sent (by its uploader cookie, see
//! [`crate::access::OwnCases`]), newest first, with verdict and date, each deletable; so a lost
//! link is not a lost result.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mole_storage::{CaseStatus, OwnCase};
use std::collections::HashMap;

use crate::AppState;
use crate::access::OwnCases;
use crate::error::AppError;
use crate::i18n::Tr;
use crate::views::{MINUTES_UTC, local_time_html};

/// How many of one's cases the list shows (newest first).
pub const MY_CASES_SHOWN: i64 = 200;

/// The page.
#[derive(Template, WebTemplate)]
#[template(path = "my_cases.html")]
pub struct MyCasesPage {
    /// The cases, newest first.
    pub cases: Vec<OwnCaseLine>,
    /// Whether the browser has an uploader cookie at all.
    pub has_cookie: bool,
    /// Whether a case was just deleted from this list.
    pub deleted: bool,
    /// Whether the list was cut at [`MY_CASES_SHOWN`].
    pub truncated: bool,
    /// The request's language.
    pub t: Tr,
}

/// One case on the list.
#[derive(Debug, Clone)]
pub struct OwnCaseLine {
    /// Case id (its page is `/cases/{id}`).
    pub id: String,
    /// When it was sent (UTC), for the delete button's label.
    pub sent: String,
    /// When it was sent, as a `<time>` the page shows in the reader's zone.
    pub sent_html: String,
    /// `see_a_doctor`, `looks_benign`, `waiting`, `refused` or `failed` (a style and a test hook).
    pub outcome: &'static str,
    /// The outcome in words.
    pub outcome_text: String,
}

impl OwnCaseLine {
    fn of(c: &OwnCase, t: Tr) -> Self {
        let outcome = match (c.status, c.verdict.as_deref()) {
            (CaseStatus::Done, Some("see_a_doctor")) => "see_a_doctor",
            (CaseStatus::Done, _) => "looks_benign",
            (CaseStatus::Refused, _) => "refused",
            (CaseStatus::Failed, _) => "failed",
            (CaseStatus::Queued | CaseStatus::Processing, _) => "waiting",
        };
        let id = format!("outcome-{}", outcome.replace('_', "-"));
        let outcome_text = t.t1(&id, "percent", percent(c.p_malignant));
        Self {
            id: c.id.to_string(),
            sent: c.created_at.format(MINUTES_UTC).to_string(),
            sent_html: local_time_html(c.created_at, MINUTES_UTC),
            outcome,
            outcome_text,
        }
    }
}

fn percent(p: Option<f32>) -> String {
    p.map_or_else(
        || "?".to_owned(),
        |p| format!("{:.0} %", f64::from(p.clamp(0.0, 1.0)) * 100.0),
    )
}

/// `GET /my-cases`.
pub async fn page(
    State(app): State<AppState>,
    t: Tr,
    own: OwnCases,
    query: Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let cases = match &own.uploader_hash {
        Some(hash) => app.store.uploader_cases(hash, MY_CASES_SHOWN + 1).await?,
        None => Vec::new(),
    };
    let truncated = cases.len() as i64 > MY_CASES_SHOWN;
    let page = MyCasesPage {
        cases: cases
            .iter()
            .take(MY_CASES_SHOWN as usize)
            .map(|c| OwnCaseLine::of(c, t))
            .collect(),
        has_cookie: own.uploader_hash.is_some(),
        deleted: query.contains_key("deleted"),
        truncated,
        t,
    };
    let mut response = page.into_response();
    // The list is personal: never kept by a shared cache.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}
