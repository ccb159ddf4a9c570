//! The clinic's pages under `/admin`: past cases (filtered, sorted, paginated, with a summary
//! strip; also as JSON), their CSV export (streamed), a case for staff (photo, result, complete
//! history, the review form), deletion, and staff accounts.
//!
//! Every handler takes [`CaseAccess`] or [`StaffAccess`]: no session means the sign-in page (or
//! 401), a role without the right 403, and every form post is checked against the session's
//! token first.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{Duration as Days, NaiveDate, TimeZone, Utc};
use futures::{SinkExt, StreamExt};
use mole_storage::{
    CaseEvent, CaseFilter, CaseRecord, CaseSort, CaseStatus, ClinicSummary, NewReview, Review,
    Role, SortKey, StaffAccount, StatusFilter,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::access::{self, CaseAccess, ListCases, ManageAccounts, Right, SeeHistory, StaffAccess};
use crate::auth::{self, Staff, TokenForm};
use crate::error::AppError;
use crate::identity::RequestId;
use crate::views::CaseView;

/// Cases per page of the list.
pub const PAGE_SIZE: i64 = 50;

/// The header of every staff page: who is signed in, and the token of the sign-out form.
#[derive(Debug, Clone)]
pub struct Nav {
    /// User name.
    pub username: String,
    /// Role, in words.
    pub role: &'static str,
    /// Whether the accounts page is theirs.
    pub is_admin: bool,
    /// The session's form token.
    pub csrf: String,
}

impl From<&Staff> for Nav {
    fn from(s: &Staff) -> Self {
        Self {
            username: s.member.username.clone(),
            role: s.member.role.as_str(),
            is_admin: s.member.role == Role::Admin,
            csrf: s.csrf.clone(),
        }
    }
}

/// `GET /admin`: the list.
pub async fn home() -> Redirect {
    Redirect::to("/admin/cases")
}

/// The list's query string (also the export's). Empty values mean "any".
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ListQuery {
    #[serde(default, skip_serializing_if = "blank")]
    status: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    verdict: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    diagnosis: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    reviewed: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    model: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    to: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    sort: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    dir: Option<String>,
    #[serde(default, skip_serializing_if = "blank")]
    page: Option<String>,
}

fn blank(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(|s| s.trim().is_empty())
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn invalid(message: String) -> AppError {
    AppError::Invalid {
        code: "invalid_filter",
        message,
    }
}

/// The validated form of a [`ListQuery`].
#[derive(Debug, Clone)]
pub struct Listing {
    /// Which cases.
    pub filter: CaseFilter,
    /// In which order.
    pub sort: CaseSort,
    /// Page, from 1.
    pub page: i64,
}

impl ListQuery {
    /// Checks every value; an unknown one is a 422 that names it.
    pub fn parse(&self, classes: &[crate::model::ClassLine]) -> Result<Listing, AppError> {
        let status = match given(&self.status) {
            None => None,
            Some("deleted") => Some(StatusFilter::Deleted),
            Some(s) => Some(StatusFilter::Live(
                CaseStatus::ALL
                    .into_iter()
                    .find(|st| st.as_str() == s)
                    .ok_or_else(|| invalid(format!("unknown status {s:?}")))?,
            )),
        };
        let verdict = match given(&self.verdict) {
            None => None,
            Some(v @ ("see_a_doctor" | "looks_benign")) => Some(v.to_owned()),
            Some(v) => return Err(invalid(format!("unknown verdict {v:?}"))),
        };
        let diagnosis = match given(&self.diagnosis) {
            None => None,
            Some(d) if classes.iter().any(|c| c.code == d) => Some(d.to_owned()),
            Some(d) => return Err(invalid(format!("unknown diagnosis {d:?}"))),
        };
        let reviewed = match given(&self.reviewed) {
            None => None,
            Some("yes") => Some(true),
            Some("no") => Some(false),
            Some(r) => return Err(invalid(format!("reviewed must be yes or no, not {r:?}"))),
        };
        let model_version = given(&self.model).map(|m| m.chars().take(200).collect());
        let date = |v: &Option<String>, name: &str| -> Result<Option<NaiveDate>, AppError> {
            given(v)
                .map(|d| {
                    NaiveDate::parse_from_str(d, "%Y-%m-%d")
                        .map_err(|_| invalid(format!("{name} must be a date like 2026-12-31")))
                })
                .transpose()
        };
        let start_of =
            |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
        let from = date(&self.from, "from")?.map(start_of);
        // `to` is inclusive: cases before the start of the next day.
        let until = date(&self.to, "to")?.map(|d| start_of(d + Days::days(1)));
        let key = match given(&self.sort) {
            None | Some("created") => SortKey::Created,
            Some("p_malignant") => SortKey::PMalignant,
            Some("status") => SortKey::Status,
            Some("diagnosis") => SortKey::Diagnosis,
            Some("verdict") => SortKey::Verdict,
            Some("model") => SortKey::Model,
            Some(s) => return Err(invalid(format!("cannot sort by {s:?}"))),
        };
        let descending = match given(&self.dir) {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(d) => return Err(invalid(format!("dir must be asc or desc, not {d:?}"))),
        };
        let page = match given(&self.page) {
            None => 1,
            Some(p) => p
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=1_000_000).contains(p))
                .ok_or_else(|| invalid(format!("page must be a positive number, not {p:?}")))?,
        };
        Ok(Listing {
            filter: CaseFilter {
                status,
                verdict,
                diagnosis,
                reviewed,
                model_version,
                from,
                until,
            },
            sort: CaseSort { key, descending },
            page,
        })
    }

    /// The query string of this query with some values replaced (for links).
    fn with(&self, changes: &[(&str, Option<String>)]) -> String {
        let mut q = self.clone();
        for (name, value) in changes {
            let slot = match *name {
                "sort" => &mut q.sort,
                "dir" => &mut q.dir,
                "page" => &mut q.page,
                _ => continue,
            };
            *slot = value.clone();
        }
        serde_urlencoded::to_string(&q).unwrap_or_default()
    }
}

/// One option of a select.
#[derive(Debug, Clone)]
pub struct Choice {
    /// Value sent.
    pub value: String,
    /// Text shown.
    pub label: String,
    /// Currently chosen.
    pub selected: bool,
}

fn choices(current: Option<&str>, options: &[(String, String)]) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice {
            value: value.clone(),
            label: label.clone(),
            selected: current == Some(value.as_str()),
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// A sortable column header.
#[derive(Debug, Clone)]
pub struct SortLink {
    /// Header text.
    pub label: &'static str,
    /// Link that sorts by it (flipping the direction when it is the current one).
    pub href: String,
    /// `↑`, `↓` or nothing.
    pub mark: &'static str,
}

/// One row of the list.
#[derive(Debug, Clone)]
pub struct ListRow {
    /// Case id.
    pub id: Uuid,
    /// Created, `YYYY-MM-DD HH:MM`.
    pub created: String,
    /// Status (or `deleted`).
    pub status: String,
    /// The model's diagnosis, named.
    pub diagnosis: String,
    /// The model's verdict code.
    pub verdict: String,
    /// The verdict in words.
    pub verdict_text: String,
    /// P(malignant) as a percentage.
    pub p_malignant: String,
    /// Model version.
    pub model: String,
    /// The latest review, in words, if any.
    pub review: Option<String>,
}

fn class_name(classes: &[crate::model::ClassLine], code: &str) -> String {
    classes
        .iter()
        .find(|c| c.code == code)
        .map_or_else(|| code.to_owned(), |c| c.name.clone())
}

fn verdict_words(v: &str) -> &'static str {
    match v {
        "see_a_doctor" => "see a doctor",
        "looks_benign" => "looks benign",
        _ => "—",
    }
}

fn status_of(r: &CaseRecord) -> String {
    if r.deleted {
        "deleted".to_owned()
    } else {
        r.status.as_str().to_owned()
    }
}

/// The summary strip, in words.
#[derive(Debug, Clone)]
pub struct Strip {
    /// The figures.
    pub summary: ClinicSummary,
    /// Agreement of the latest reviews with the model's diagnosis, e.g. `80.0 %`, or `—`.
    pub agreement: String,
}

/// The past-cases page.
#[derive(Template, WebTemplate)]
#[template(path = "admin/cases.html")]
pub struct CasesPage {
    /// Header.
    pub nav: Nav,
    /// Summary strip.
    pub strip: Strip,
    /// Filter selects.
    pub statuses: Vec<Choice>,
    /// Filter selects.
    pub verdicts: Vec<Choice>,
    /// Filter selects.
    pub diagnoses: Vec<Choice>,
    /// Filter selects.
    pub reviewed: Vec<Choice>,
    /// Filter selects.
    pub models: Vec<Choice>,
    /// Date range as typed.
    pub from: String,
    /// Date range as typed.
    pub to: String,
    /// Column headers.
    pub columns: Vec<SortLink>,
    /// The page's cases.
    pub rows: Vec<ListRow>,
    /// Cases matching.
    pub total: i64,
    /// Page shown, from 1.
    pub page: i64,
    /// Pages.
    pub pages: i64,
    /// Link to the previous page.
    pub prev: Option<String>,
    /// Link to the next page.
    pub next: Option<String>,
    /// Link to the CSV of the same filters.
    pub export: String,
}

/// The list as JSON (`Accept: application/json`).
#[derive(Serialize)]
struct ListJson<'a> {
    total: i64,
    page: i64,
    pages: i64,
    page_size: i64,
    summary: &'a ClinicSummary,
    cases: &'a [CaseRecord],
}

fn today_start() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    Utc.from_utc_datetime(&now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// `GET /admin/cases`: the list (HTML, or JSON for JSON clients).
pub async fn list(
    State(app): State<AppState>,
    access: StaffAccess<ListCases>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, AppError> {
    let classes = &app.model.classes;
    let listing = q.parse(classes)?;
    let offset = (listing.page - 1) * PAGE_SIZE;
    let (records, total, summary, models) = tokio::try_join!(
        app.store
            .list_cases(&listing.filter, listing.sort, offset, PAGE_SIZE),
        app.store.count_cases(&listing.filter),
        app.store.clinic_summary(today_start()),
        app.store.model_versions(),
    )?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    if auth::wants_json(&headers) {
        return Ok(axum::Json(ListJson {
            total,
            page: listing.page,
            pages,
            page_size: PAGE_SIZE,
            summary: &summary,
            cases: &records,
        })
        .into_response());
    }
    let rows = records
        .iter()
        .map(|r| ListRow {
            id: r.id,
            created: r.created_at.format("%Y-%m-%d %H:%M").to_string(),
            status: status_of(r),
            diagnosis: r
                .top_class
                .as_deref()
                .map_or_else(|| "—".to_owned(), |c| class_name(classes, c)),
            verdict: r.verdict.clone().unwrap_or_default(),
            verdict_text: verdict_words(r.verdict.as_deref().unwrap_or("")).to_owned(),
            p_malignant: r
                .p_malignant
                .map_or_else(|| "—".to_owned(), |p| format!("{:.1} %", p * 100.0)),
            model: r.model_version.clone().unwrap_or_else(|| "—".to_owned()),
            review: r.review.as_ref().map(|v| {
                format!(
                    "{}, {} (by {}{})",
                    class_name(classes, &v.diagnosis),
                    verdict_words(&v.verdict),
                    v.reviewer,
                    if v.version > 1 {
                        format!(", amended ×{}", v.version - 1)
                    } else {
                        String::new()
                    }
                )
            }),
        })
        .collect();
    let class_options: Vec<(String, String)> = classes
        .iter()
        .map(|c| (c.code.clone(), c.name.clone()))
        .collect();
    let model_options: Vec<(String, String)> =
        models.iter().map(|m| (m.clone(), m.clone())).collect();
    let sort_now = given(&q.sort).unwrap_or("created");
    let dir_now = given(&q.dir).unwrap_or("desc");
    let columns = [
        ("created", "Created"),
        ("status", "Status"),
        ("diagnosis", "Model's diagnosis"),
        ("verdict", "Model's verdict"),
        ("p_malignant", "P(malignant)"),
        ("model", "Model"),
    ]
    .into_iter()
    .map(|(key, label)| {
        let current = sort_now == key;
        let dir = if current && dir_now == "desc" {
            "asc"
        } else {
            "desc"
        };
        SortLink {
            label,
            href: format!(
                "/admin/cases?{}",
                q.with(&[
                    ("sort", Some(key.to_owned())),
                    ("dir", Some(dir.to_owned())),
                    ("page", None)
                ])
            ),
            mark: match (current, dir_now) {
                (true, "asc") => "↑",
                (true, _) => "↓",
                _ => "",
            },
        }
    })
    .collect();
    let page_link = |p: i64| format!("/admin/cases?{}", q.with(&[("page", Some(p.to_string()))]));
    let agreement = if summary.reviewed > 0 {
        format!(
            "{:.1} % of {}",
            100.0 * summary.agreeing as f64 / summary.reviewed as f64,
            summary.reviewed
        )
    } else {
        "no reviews yet".to_owned()
    };
    Ok(CasesPage {
        nav: Nav::from(&access.staff),
        strip: Strip { summary, agreement },
        statuses: choices(
            given(&q.status),
            &pairs(&[
                ("queued", "queued"),
                ("processing", "processing"),
                ("done", "done"),
                ("failed", "failed"),
                ("refused", "refused (photo unusable)"),
                ("deleted", "deleted"),
            ]),
        ),
        verdicts: choices(
            given(&q.verdict),
            &pairs(&[
                ("see_a_doctor", "see a doctor"),
                ("looks_benign", "looks benign"),
            ]),
        ),
        diagnoses: choices(given(&q.diagnosis), &class_options),
        reviewed: choices(
            given(&q.reviewed),
            &pairs(&[("yes", "reviewed"), ("no", "waiting for review")]),
        ),
        models: choices(given(&q.model), &model_options),
        from: given(&q.from).unwrap_or_default().to_owned(),
        to: given(&q.to).unwrap_or_default().to_owned(),
        columns,
        rows,
        total,
        page: listing.page,
        pages,
        prev: (listing.page > 1).then(|| page_link(listing.page - 1)),
        next: (listing.page < pages).then(|| page_link(listing.page + 1)),
        export: format!("/admin/cases.csv?{}", q.with(&[("page", None)])),
    }
    .into_response())
}

/// The CSV's columns before the per-class probabilities.
pub const CSV_HEAD: [&str; 11] = [
    "case_id",
    "created_at",
    "finished_at",
    "status",
    "deleted",
    "error_code",
    "model_version",
    "model_verdict",
    "p_malignant",
    "threshold",
    "model_diagnosis",
];

/// The CSV's columns after the per-class probabilities.
pub const CSV_TAIL: [&str; 10] = [
    "queue_ms",
    "inference_ms",
    "reviewed",
    "review_version",
    "reviewer",
    "reviewed_at",
    "review_diagnosis",
    "review_agrees_with_model",
    "review_verdict",
    "review_note",
];

/// A spreadsheet runs a cell that starts with one of these as a formula: such free text is
/// written with a leading apostrophe.
fn defuse(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn csv_line(fields: &[String]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::with_capacity(256));
    w.write_record(fields)?;
    w.into_inner().map_err(|e| e.into_error().into())
}

fn csv_fields(r: &CaseRecord, codes: &[String]) -> Vec<String> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let time = |t: Option<chrono::DateTime<Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    let mut f = vec![
        r.id.to_string(),
        time(Some(r.created_at)),
        time(r.finished_at),
        status_of(r),
        r.deleted.to_string(),
        opt(r.error_code.clone()),
        opt(r.model_version.clone()),
        opt(r.verdict.clone()),
        r.p_malignant.map(|p| format!("{p:.6}")).unwrap_or_default(),
        r.threshold.map(|p| format!("{p:.6}")).unwrap_or_default(),
        opt(r.top_class.clone()),
    ];
    for code in codes {
        f.push(
            r.classes
                .iter()
                .find(|c| &c.code == code)
                .map(|c| format!("{:.6}", c.probability))
                .unwrap_or_default(),
        );
    }
    f.push(opt(r.queue_ms.map(|v| v.to_string())));
    f.push(opt(r.inference_ms.map(|v| v.to_string())));
    match &r.review {
        Some(v) => {
            f.push("true".to_owned());
            f.push(v.version.to_string());
            f.push(v.reviewer.clone());
            f.push(time(Some(v.at)));
            f.push(v.diagnosis.clone());
            f.push(match &r.top_class {
                Some(t) => (t == &v.diagnosis).to_string(),
                None => String::new(),
            });
            f.push(v.verdict.clone());
            f.push(v.note.as_deref().map(defuse).unwrap_or_default());
        }
        None => {
            f.push("false".to_owned());
            f.extend(std::iter::repeat_n(String::new(), 7));
        }
    }
    f
}

/// `GET /admin/cases.csv`: every case of the list's filters (all pages), in the list's order, one
/// row per case with the model's output and the latest review; streamed from one database
/// cursor, so memory does not grow with the export. Columns: docs/service.md.
pub async fn export(
    State(app): State<AppState>,
    access: StaffAccess<ListCases>,
    RequestId(request_id): RequestId,
    Query(q): Query<ListQuery>,
) -> Result<Response, AppError> {
    let listing = q.parse(&app.model.classes)?;
    let codes: Vec<String> = app.model.classes.iter().map(|c| c.code.clone()).collect();
    let mut header: Vec<String> = CSV_HEAD.iter().map(|s| (*s).to_owned()).collect();
    header.extend(codes.iter().map(|c| format!("p_{c}")));
    header.extend(CSV_TAIL.iter().map(|s| (*s).to_owned()));
    let head = csv_line(&header).map_err(|e| AppError::internal(format!("csv header: {e}")))?;
    app.store
        .staff_event(
            mole_storage::Actor::staff(&access.staff.member.username).as_str(),
            "exported",
            Some(&request_id),
            json!({ "query": serde_urlencoded::to_string(&q).unwrap_or_default() }),
        )
        .await?;
    // A task reads the cursor and hands rows over a small channel: the body pulls at the
    // client's pace, and a client that goes away ends the task (and frees the connection).
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(32);
    let store = app.store.clone();
    tokio::spawn(async move {
        if tx.send(Ok(head)).await.is_err() {
            return;
        }
        let rows = store.export_cases(&listing.filter, listing.sort);
        futures::pin_mut!(rows);
        while let Some(row) = rows.next().await {
            let line = match row {
                Ok(r) => csv_line(&csv_fields(&r, &codes)).map_err(std::io::Error::other),
                Err(e) => {
                    tracing::error!(error = %e, "the export stopped");
                    Err(std::io::Error::other("the export stopped"))
                }
            };
            let failed = line.is_err();
            if tx.send(line).await.is_err() || failed {
                return;
            }
        }
    });
    let filename = format!(
        "attachment; filename=\"mole-cases-{}.csv\"",
        Utc::now().format("%Y%m%d-%H%M%S")
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&filename)
                    .map_err(|e| AppError::internal(format!("content-disposition: {e}")))?,
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::from_stream(rx),
    )
        .into_response())
}

/// One line of the audit history.
#[derive(Debug, Clone)]
pub struct AuditLine {
    /// Time.
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Facts, compact JSON (empty when none).
    pub details: String,
    /// The request behind it.
    pub request_id: String,
}

impl From<&CaseEvent> for AuditLine {
    fn from(e: &CaseEvent) -> Self {
        let details = match &e.detail {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            other => other.to_string(),
        };
        Self {
            at: e.at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
            actor: e.actor.clone(),
            action: e.kind.as_str().to_owned(),
            details,
            request_id: e.request_id.clone().unwrap_or_default(),
        }
    }
}

/// One version of the reviews.
#[derive(Debug, Clone)]
pub struct ReviewLine {
    /// Version.
    pub version: i32,
    /// Time.
    pub at: String,
    /// Who.
    pub reviewer: String,
    /// Diagnosis, named.
    pub diagnosis: String,
    /// Whether it is the model's.
    pub agrees: bool,
    /// Verdict in words.
    pub verdict: &'static str,
    /// Note.
    pub note: String,
}

impl ReviewLine {
    fn new(r: &Review, classes: &[crate::model::ClassLine]) -> Self {
        Self {
            version: r.version,
            at: r.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            reviewer: r.reviewer.clone(),
            diagnosis: class_name(classes, &r.diagnosis),
            agrees: r.model_diagnosis.as_deref() == Some(r.diagnosis.as_str()),
            verdict: verdict_words(&r.verdict),
            note: r.note.clone().unwrap_or_default(),
        }
    }
}

/// A case for staff.
#[derive(Template, WebTemplate)]
#[template(path = "admin/case.html")]
pub struct StaffCasePage {
    /// Header.
    pub nav: Nav,
    /// The case as the public sees it (result, diagnoses, timings).
    pub view: CaseView,
    /// Facts for staff: `(label, value)`.
    pub facts: Vec<(&'static str, String)>,
    /// Reviews, first first.
    pub reviews: Vec<ReviewLine>,
    /// The complete history.
    pub events: Vec<AuditLine>,
    /// The review form's diagnoses (the latest review's, else the model's, chosen).
    pub classes: Vec<Choice>,
    /// The review form's verdicts.
    pub verdicts: Vec<Choice>,
    /// Whether the review form is shown.
    pub can_review: bool,
    /// Whether the delete button is shown.
    pub can_delete: bool,
    /// Whether the case is deleted (a tombstone).
    pub deleted: bool,
    /// Said after a review was saved.
    pub saved: Option<String>,
    /// The language of the parts shared with the public case page (the clinic's pages are in
    /// English).
    pub t: crate::i18n::Tr,
}

/// Query of the staff case page.
#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    reviewed: Option<i32>,
}

/// `GET /admin/cases/{id}`: the case for staff. Every visit is appended to its history.
pub async fn case(
    State(app): State<AppState>,
    RequestId(request_id): RequestId,
    access: CaseAccess<SeeHistory>,
    staff: Staff,
    Query(q): Query<CaseQuery>,
) -> Result<Response, AppError> {
    let id = access.id();
    app.store
        .record_staff_view(id, &access.caller.actor(), Some(&request_id))
        .await?;
    let (events, reviews) = tokio::try_join!(app.store.events(id), app.store.reviews(id))?;
    let classes = &app.model.classes;
    let case = &access.state.case;
    let view = CaseView::of(&access.state, crate::i18n::Tr::default());
    let latest = reviews.last();
    let chosen_class = latest.map(|r| r.diagnosis.clone()).or_else(|| {
        access
            .state
            .prediction
            .as_ref()
            .map(|p| p.result.top_class.clone())
    });
    let chosen_verdict = latest.map(|r| r.verdict.clone()).or_else(|| {
        access
            .state
            .prediction
            .as_ref()
            .map(|p| p.result.verdict.clone())
    });
    let class_options: Vec<(String, String)> = classes
        .iter()
        .map(|c| {
            let mut label = c.name.clone();
            if c.malignant {
                label.push_str(" (malignant)");
            }
            if access
                .state
                .prediction
                .as_ref()
                .map(|p| &p.result.top_class)
                == Some(&c.code)
            {
                label.push_str(" — the model's");
            }
            (c.code.clone(), label)
        })
        .collect();
    let time = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or_else(
            || "—".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    let facts = vec![
        ("Case", case.id.to_string()),
        ("Created", time(Some(case.created_at))),
        ("Analysis started", time(case.started_at)),
        ("Finished", time(case.finished_at)),
        ("Attempts", case.attempts.to_string()),
        ("Request id", case.request_id.clone()),
        ("Deleted", time(case.deleted_at)),
    ];
    Ok(StaffCasePage {
        nav: Nav::from(&staff),
        view,
        facts,
        reviews: reviews
            .iter()
            .map(|r| ReviewLine::new(r, classes))
            .collect(),
        events: events.iter().map(AuditLine::from).collect(),
        classes: choices(chosen_class.as_deref(), &class_options),
        verdicts: choices(
            chosen_verdict.as_deref(),
            &pairs(&[
                ("see_a_doctor", "see a doctor"),
                ("looks_benign", "looks benign"),
            ]),
        ),
        can_review: !case.is_deleted() && access.may(Right::Review),
        can_delete: !case.is_deleted() && access.may(Right::Delete),
        deleted: case.is_deleted(),
        saved: q.reviewed.map(|v| {
            if v > 1 {
                format!("Review amended (version {v}); the earlier versions are kept below.")
            } else {
                "Review recorded.".to_owned()
            }
        }),
        t: crate::i18n::Tr::default(),
    }
    .into_response())
}

/// `GET /admin/cases/{id}/image`: the photo, for staff.
pub async fn image(
    State(app): State<AppState>,
    access: CaseAccess<access::SeePhoto>,
) -> Result<Response, AppError> {
    crate::cases::photo(&app, access.id()).await
}

/// The review form.
/// Missing fields are empty, so a form without its token is refused as such (403), not
/// as a malformed body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReviewForm {
    diagnosis: String,
    verdict: String,
    note: String,
    csrf: String,
}

/// Longest note, in characters.
pub const MAX_NOTE: usize = 4000;

/// `POST /admin/cases/{id}/review`: records a review, or amends it (a new version; the earlier
/// ones stay), with its `reviewed` event.
pub async fn review(
    State(app): State<AppState>,
    RequestId(request_id): RequestId,
    access: CaseAccess<access::Review>,
    staff: Staff,
    Form(form): Form<ReviewForm>,
) -> Result<Response, AppError> {
    staff.check_form(&form.csrf)?;
    let bad = |message: &str| AppError::Invalid {
        code: "invalid_review",
        message: message.to_owned(),
    };
    if !app.model.classes.iter().any(|c| c.code == form.diagnosis) {
        return Err(bad("choose one of the listed diagnoses"));
    }
    if !matches!(form.verdict.as_str(), "see_a_doctor" | "looks_benign") {
        return Err(bad("choose a verdict"));
    }
    let note = form.note.trim();
    if note.chars().count() > MAX_NOTE {
        return Err(bad("the note is too long (at most 4000 characters)"));
    }
    let version = app
        .store
        .add_review(&NewReview {
            case_id: access.id(),
            reviewer: staff.member.id,
            reviewer_name: staff.member.username.clone(),
            diagnosis: form.diagnosis,
            verdict: form.verdict,
            note: (!note.is_empty()).then(|| note.to_owned()),
            request_id: Some(request_id),
        })
        .await?
        .ok_or(AppError::Gone)?;
    Ok(Redirect::to(&format!("/admin/cases/{}?reviewed={version}", access.id())).into_response())
}

/// `POST /admin/cases/{id}/delete`: an admin deletes a case (photo, result, notes and the
/// uploader's pseudonym go; a tombstone and its history stay).
pub async fn delete(
    State(app): State<AppState>,
    RequestId(request_id): RequestId,
    access: CaseAccess<access::Delete>,
    staff: Staff,
    Form(form): Form<TokenForm>,
) -> Result<Response, AppError> {
    staff.check_form(&form.csrf)?;
    let deleted = app
        .store
        .delete_case(access.id(), &access.caller.actor(), Some(&request_id))
        .await?;
    if !deleted {
        return Err(AppError::Gone);
    }
    Ok(Redirect::to(&format!("/admin/cases/{}", access.id())).into_response())
}

/// One account on the accounts page.
#[derive(Debug, Clone)]
pub struct AccountLine {
    /// Id.
    pub id: Uuid,
    /// User name.
    pub username: String,
    /// Role.
    pub role: &'static str,
    /// Created.
    pub created: String,
    /// Last sign-in.
    pub last_sign_in: String,
    /// Disabled.
    pub disabled: bool,
    /// The signed-in admin themself (cannot be disabled here).
    pub is_self: bool,
}

/// The accounts page.
#[derive(Template, WebTemplate)]
#[template(path = "admin/users.html")]
pub struct UsersPage {
    /// Header.
    pub nav: Nav,
    /// Accounts.
    pub accounts: Vec<AccountLine>,
    /// What happened.
    pub message: Option<String>,
}

fn account_line(a: &StaffAccount, me: Uuid) -> AccountLine {
    let time = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or_else(
            || "never".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
    };
    AccountLine {
        id: a.id,
        username: a.username.clone(),
        role: a.role.as_str(),
        created: time(Some(a.created_at)),
        last_sign_in: time(a.last_sign_in_at),
        disabled: a.disabled_at.is_some(),
        is_self: a.id == me,
    }
}

/// Query of the accounts page.
#[derive(Debug, Deserialize)]
pub struct UsersQuery {
    done: Option<String>,
}

/// `GET /admin/users`: the accounts (admin only).
pub async fn users(
    State(app): State<AppState>,
    access: StaffAccess<ManageAccounts>,
    Query(q): Query<UsersQuery>,
) -> Result<Response, AppError> {
    let me = access.staff.member.id;
    let accounts = app.store.accounts().await?;
    let messages = BTreeMap::from([
        ("added", "Account added."),
        ("disabled", "Account disabled; its sessions have ended."),
        ("enabled", "Account enabled."),
    ]);
    Ok(UsersPage {
        nav: Nav::from(&access.staff),
        accounts: accounts.iter().map(|a| account_line(a, me)).collect(),
        message: q
            .done
            .as_deref()
            .and_then(|d| messages.get(d))
            .map(|m| (*m).to_owned()),
    }
    .into_response())
}

/// The add-account form.
/// Missing fields are empty, so a form without its token is refused as such (403), not
/// as a malformed body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddUserForm {
    username: String,
    role: String,
    password: String,
    csrf: String,
}

/// `POST /admin/users`: adds an account (admin only).
pub async fn add_user(
    State(app): State<AppState>,
    access: StaffAccess<ManageAccounts>,
    RequestId(request_id): RequestId,
    Form(form): Form<AddUserForm>,
) -> Result<Response, AppError> {
    access.staff.check_form(&form.csrf)?;
    let bad = |message: String| AppError::Invalid {
        code: "invalid_account",
        message,
    };
    let username = form.username.trim().to_lowercase();
    if let Some(problem) = auth::username_problem(&username) {
        return Err(bad(problem));
    }
    let role = match form.role.as_str() {
        "reviewer" => Role::Reviewer,
        "admin" => Role::Admin,
        _ => return Err(bad("choose a role".to_owned())),
    };
    if let Some(problem) = auth::password_problem(&form.password) {
        return Err(bad(problem));
    }
    let password = form.password;
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| AppError::internal(format!("hashing panicked: {e}")))?
        .map_err(|e| AppError::internal(e.to_string()))?;
    let Some(account) = app.store.create_account(&username, role, &hash).await? else {
        return Err(bad(format!("the user name {username:?} is taken")));
    };
    app.store
        .staff_event(
            mole_storage::Actor::staff(&access.staff.member.username).as_str(),
            "account_created",
            Some(&request_id),
            json!({ "username": account.username, "role": role.as_str() }),
        )
        .await?;
    Ok(Redirect::to("/admin/users?done=added").into_response())
}

/// `POST /admin/users/{id}/disable` and `/enable` (admin only; not one's own account).
pub async fn set_disabled(
    State(app): State<AppState>,
    access: StaffAccess<ManageAccounts>,
    RequestId(request_id): RequestId,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<TokenForm>,
) -> Result<Response, AppError> {
    access.staff.check_form(&form.csrf)?;
    let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
    let disable = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(AppError::NotFound),
    };
    if id == access.staff.member.id {
        return Err(AppError::Invalid {
            code: "invalid_account",
            message: "you cannot disable or enable your own account".to_owned(),
        });
    }
    let account = app.store.account(id).await?.ok_or(AppError::NotFound)?;
    app.store.set_account_disabled(id, disable).await?;
    app.store
        .staff_event(
            mole_storage::Actor::staff(&access.staff.member.username).as_str(),
            if disable {
                "account_disabled"
            } else {
                "account_enabled"
            },
            Some(&request_id),
            json!({ "username": account.username }),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/admin/users?done={}",
        if disable { "disabled" } else { "enabled" }
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<crate::model::ClassLine> {
        ["mel", "nv"]
            .iter()
            .map(|c| crate::model::ClassLine {
                code: (*c).to_owned(),
                name: c.to_uppercase(),
                malignant: *c == "mel",
                figures: None,
            })
            .collect()
    }

    #[test]
    fn a_query_with_every_filter_becomes_the_filter_it_names() {
        let q: ListQuery = serde_urlencoded::from_str(
            "status=done&verdict=see_a_doctor&diagnosis=mel&reviewed=no&model=m%401\
             &from=2026-12-01&to=2026-12-02&sort=p_malignant&dir=asc&page=3",
        )
        .unwrap();
        let l = q.parse(&classes()).unwrap();
        assert_eq!(l.filter.status, Some(StatusFilter::Live(CaseStatus::Done)));
        assert_eq!(l.filter.verdict.as_deref(), Some("see_a_doctor"));
        assert_eq!(l.filter.diagnosis.as_deref(), Some("mel"));
        assert_eq!(l.filter.reviewed, Some(false));
        assert_eq!(l.filter.model_version.as_deref(), Some("m@1"));
        assert_eq!(
            l.filter.from.unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(
            l.filter.until.unwrap().to_rfc3339(),
            "2026-12-03T00:00:00+00:00"
        );
        assert_eq!(l.sort.key, SortKey::PMalignant);
        assert!(!l.sort.descending);
        assert_eq!(l.page, 3);
    }

    #[test]
    fn empty_values_mean_any_and_unknown_values_are_refused() {
        let q: ListQuery = serde_urlencoded::from_str("status=&verdict=&diagnosis=&page=").unwrap();
        let l = q.parse(&classes()).unwrap();
        assert_eq!(l.filter, CaseFilter::default());
        assert_eq!(l.page, 1);
        for bad in [
            "status=lost",
            "diagnosis=xyz",
            "sort=password_hash",
            "from=yesterday",
            "page=0",
            "reviewed=maybe",
        ] {
            let q: ListQuery = serde_urlencoded::from_str(bad).unwrap();
            assert!(q.parse(&classes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn free_text_that_a_spreadsheet_would_run_is_defused() {
        assert_eq!(defuse("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defuse("benign naevus"), "benign naevus");
    }
}
