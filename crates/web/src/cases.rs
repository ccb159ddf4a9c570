//! A case: its page (with live updates), its JSON, its event stream, its photo, its deletion.
//!
//! Every route takes a [`CaseAccess`], which parses the id, loads the case, refuses deleted cases
//! and decides whether the caller may do what the route does ([`crate::access`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use mole_storage::{CaseEvent, CaseState, EventKind};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::access::{CaseAccess, Delete, Right, SeeHistory, SeePhoto};
use crate::error::AppError;
use crate::i18n::{Lang, Tr};
use crate::identity::RequestId;
use crate::live::{Snapshot, StreamSlot};
use crate::views::CaseView;
use crate::wait::WaitView;

/// How soon a browser reconnects a cut stream (after a web restart, say), in the SSE `retry`.
const STREAM_RETRY: Duration = Duration::from_secs(1);

/// The case page.
#[derive(Template, WebTemplate)]
#[template(path = "case.html")]
pub struct CasePage {
    /// The case.
    pub view: CaseView,
    /// The live part, rendered (the same HTML the live stream sends).
    pub panel: String,
    /// Whether the caller may see the photo and delete the case (the uploader).
    pub is_uploader: bool,
    /// The audit trail (shown to those who may see it).
    pub events: Vec<EventLine>,
    /// What the model is and is not, in plain words (on every case page).
    pub limits: Limits,
    /// The queue ahead and the workers, while the case waits.
    pub wait: Option<WaitView>,
    /// The request's language.
    pub t: Tr,
}

/// The model's limits in words a patient understands, with its operating point on the test split.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `name@version`.
    pub model_version: String,
    /// Of 100 malignant lesions in the test photos, how many the advice sent to a doctor.
    pub caught_of_100: Option<u32>,
    /// Of 100 benign lesions in the test photos, how many were called benign.
    pub cleared_of_100: Option<u32>,
}

impl Limits {
    /// From the model's card and its evaluator report.
    pub fn of(model: &crate::model::ModelInfo) -> Self {
        let report = model.report.as_ref();
        Self {
            model_version: model.version.clone(),
            caught_of_100: report.map(|r| r.sensitivity.round() as u32),
            cleared_of_100: report.map(|r| r.specificity.round() as u32),
        }
    }

    /// The operating point in words, when the report gives it.
    pub fn operating_point(&self, t: &Tr) -> Option<String> {
        let (caught, cleared) = (self.caught_of_100?, self.cleared_of_100?);
        let mut args = fluent_bundle::FluentArgs::new();
        args.set("caught", caught);
        args.set("missed", 100u32.saturating_sub(caught));
        args.set("cleared", cleared);
        args.set("sent", 100u32.saturating_sub(cleared));
        Some(t.with_args("limits-operating-point", &args))
    }
}

/// The live part of the case page: status and result, the same for everyone who may see it.
/// Sent inside every live event, and served alone as the polling fallback.
#[derive(Template)]
#[template(path = "case_panel.html")]
pub struct CasePanel<'a> {
    /// The case.
    pub view: &'a CaseView,
    /// The language it is rendered in.
    pub t: Tr,
}

/// One line of the history shown to the uploader, in words.
#[derive(Debug, Clone)]
pub struct EventLine {
    /// When, as a `<time>` the page shows in the reader's zone (UTC to the second without
    /// JavaScript).
    pub at_html: String,
    /// Event kind (a stable code, for tests and styles).
    pub kind: String,
    /// What happened, from the uploader's side ("You sent the photo.").
    pub text: String,
}

impl EventLine {
    /// An event of the trail in the words of `t`.
    pub fn new(e: &CaseEvent, t: Tr) -> Self {
        Self {
            at_html: crate::views::local_time_html(e.at, "%Y-%m-%d %H:%M:%S UTC"),
            kind: e.kind.as_str().to_owned(),
            text: t.t(in_words(e.kind, e.actor.as_str())),
        }
    }
}

/// An event of the audit trail as its uploader reads it (the catalogue's id): who did what, in
/// words, never an actor code (`uploader:42cee2f1f4de`) or a worker's name.
pub fn in_words(kind: EventKind, actor: &str) -> &'static str {
    let by_uploader = actor.starts_with("uploader:");
    match kind {
        EventKind::Created if by_uploader => "history-created-you",
        EventKind::Created => "history-created",
        EventKind::Queued => "history-queued",
        EventKind::Requeued => "history-requeued",
        EventKind::Started => "history-started",
        EventKind::Retrying => "history-retrying",
        EventKind::Completed => "history-completed",
        EventKind::Failed => "history-failed",
        EventKind::Refused => "history-refused",
        EventKind::Explained => "history-explained",
        EventKind::Viewed if by_uploader => "history-viewed-you",
        EventKind::Viewed if actor.starts_with("visitor") => "history-viewed-visitor",
        EventKind::Viewed if actor.starts_with("staff:") => "history-viewed-staff",
        EventKind::Viewed => "history-viewed",
        EventKind::Reviewed => "history-reviewed",
        EventKind::Deleted if by_uploader => "history-deleted-you",
        EventKind::Deleted => "history-deleted",
    }
}

/// The history section alone: what the page fetches to keep its history live.
#[derive(Template)]
#[template(path = "history.html")]
pub struct HistoryFragment {
    /// The history, oldest first.
    pub events: Vec<EventLine>,
    /// The request's language.
    pub t: Tr,
}

/// The `data` of a live event: the case JSON and the page's panel, so the page needs no second
/// request to show a change.
#[derive(Serialize)]
struct LiveEvent<'a> {
    #[serde(flatten)]
    view: &'a CaseView,
    /// The state's version (also the event id).
    version: i64,
    /// The panel's HTML.
    html: &'a str,
}

fn view_of(state: &CaseState, t: Tr) -> CaseView {
    CaseView::of(state, t)
}

fn render_panel(view: &CaseView, t: Tr) -> Result<String, AppError> {
    CasePanel { view, t }
        .render()
        .map_err(|e| AppError::internal(format!("rendering the case panel failed: {e}")))
}

/// What a case's live streams send for `state`: rendered once per change and language, for every
/// stream of that language.
pub fn snapshot(state: &CaseState) -> Snapshot {
    let case = &state.case;
    let terminal = case.is_deleted() || case.status.is_terminal();
    let state = state.clone();
    Snapshot::new(state.version, terminal, move |lang| {
        let t = Tr::new(lang);
        let view = view_of(&state, t);
        let html = render_panel(&view, t).unwrap_or_else(|e| {
            tracing::error!(error = ?e, "the live panel could not be rendered; sending the JSON only");
            String::new()
        });
        serde_json::to_string(&LiveEvent {
            view: &view,
            version: state.version,
            html: &html,
        })
        .expect("a case view serialises")
    })
}

/// `GET /cases/{id}`: the page. Records the view (once per viewer per window).
pub async fn page(
    State(app): State<AppState>,
    RequestId(request_id): RequestId,
    t: Tr,
    access: CaseAccess,
) -> Result<Response, AppError> {
    let id = access.id();
    app.store
        .record_view(
            id,
            &access.caller.actor(),
            Some(&request_id),
            app.config.view_window,
        )
        .await?;
    let events = if access.may(Right::SeeHistory) {
        app.store
            .events(id)
            .await?
            .iter()
            .map(|e| EventLine::new(e, t))
            .collect()
    } else {
        Vec::new()
    };
    let view = view_of(&access.state, t);
    let panel = render_panel(&view, t)?;
    let wait = if view.is_terminal() {
        None
    } else {
        Some(WaitView::of(&app, &access, t).await?)
    };
    Ok(CasePage {
        view,
        panel,
        is_uploader: access.may(Right::SeePhoto),
        events,
        limits: Limits::of(&app.model),
        wait,
        t,
    }
    .into_response())
}

/// `GET /cases/{id}/history`: the history section as an HTML fragment (the uploader's), which the
/// page fetches after every change so that its history is live with the rest.
pub async fn history(
    State(app): State<AppState>,
    t: Tr,
    access: CaseAccess<SeeHistory>,
) -> Result<Response, AppError> {
    let events = app
        .store
        .events(access.id())
        .await?
        .iter()
        .map(|e| EventLine::new(e, t))
        .collect();
    let html = HistoryFragment { events, t }
        .render()
        .map_err(|e| AppError::internal(format!("rendering the history failed: {e}")))?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::response::Html(html),
    )
        .into_response())
}

/// `GET /cases/{id}/panel`: the live part of the page as an HTML fragment (what a page that
/// cannot hold a stream polls).
pub async fn panel(t: Tr, access: CaseAccess) -> Result<Response, AppError> {
    let html = render_panel(&view_of(&access.state, t), t)?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::response::Html(html),
    )
        .into_response())
}

/// `GET /api/cases/{id}`: the case as JSON.
pub async fn json(t: Tr, access: CaseAccess) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(view_of(&access.state, t)),
    )
        .into_response()
}

/// `GET /cases/{id}/image`: the stored (metadata-free) photo; the uploader's only.
pub async fn image(
    State(app): State<AppState>,
    access: CaseAccess<SeePhoto>,
) -> Result<Response, AppError> {
    photo(&app, access.id()).await
}

/// The stored photo of a case whose access was checked, never cached.
pub(crate) async fn photo(app: &AppState, id: uuid::Uuid) -> Result<Response, AppError> {
    let image = app
        .store
        .image(id)
        .await?
        .ok_or_else(|| AppError::internal("a live case has no stored image"))?;
    let content_type = HeaderValue::from_str(&image.content_type)
        .map_err(|e| AppError::internal(format!("stored content type: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        image.bytes,
    )
        .into_response())
}

async fn delete_case(
    app: &AppState,
    access: &CaseAccess<Delete>,
    request_id: &str,
) -> Result<(), AppError> {
    let deleted = app
        .store
        .delete_case(access.id(), &access.caller.actor(), Some(request_id))
        .await?;
    if !deleted {
        // Deleted by a request that passed the access check at the same moment.
        return Err(AppError::Gone);
    }
    Ok(())
}

/// The delete form: where to go afterwards (`next=my-cases` from the list of one's cases).
#[derive(Debug, Default, serde::Deserialize)]
pub struct DeleteForm {
    next: Option<String>,
}

/// `POST /cases/{id}/delete`: the delete buttons of the case page and of "my cases" (work
/// without JavaScript); back to the front page, or to the list when sent from there.
pub async fn delete_form(
    State(app): State<AppState>,
    RequestId(request_id): RequestId,
    access: CaseAccess<Delete>,
    form: Result<axum::Form<DeleteForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, AppError> {
    delete_case(&app, &access, &request_id).await?;
    let back_to_list = form.is_ok_and(|f| f.next.as_deref() == Some("my-cases"));
    Ok(Redirect::to(if back_to_list {
        "/my-cases?deleted"
    } else {
        "/?deleted"
    })
    .into_response())
}

/// `DELETE /api/cases/{id}`: deletion for API clients; 204 when done.
pub async fn delete_json(
    State(app): State<AppState>,
    RequestId(request_id): RequestId,
    access: CaseAccess<Delete>,
) -> Result<StatusCode, AppError> {
    delete_case(&app, &access, &request_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /cases/{id}/events`: server-sent events. Sends `status` (the case JSON with the page's
/// panel, its version as the event id) now and on every change, and ends after a final state
/// (done, failed, deleted). A reconnecting client's `Last-Event-ID` skips the state it already
/// has. Beyond `MOLE_MAX_STREAMS` open streams: 429, and the page polls instead.
pub async fn events(
    State(app): State<AppState>,
    headers: HeaderMap,
    t: Tr,
    access: CaseAccess,
) -> Result<Response, AppError> {
    let slot = app.live.open_stream().ok_or(AppError::Overloaded)?;
    let seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let stream = StreamState {
        snapshots: app.live.follow_from(&access.state),
        seen,
        lang: t.lang,
        done: false,
        shutdown: app.shutdown.clone(),
        _slot: slot,
    };
    let events = futures::stream::unfold(stream, next_event);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

struct StreamState {
    snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    /// The version the client has (sent by us, or named by its `Last-Event-ID`).
    seen: Option<i64>,
    /// The language of the stream's panels.
    lang: Lang,
    done: bool,
    shutdown: CancellationToken,
    _slot: StreamSlot,
}

async fn next_event(mut s: StreamState) -> Option<(Result<Event, Infallible>, StreamState)> {
    if s.done {
        return None;
    }
    let mut closed = false;
    loop {
        let current = s.snapshots.borrow_and_update().clone();
        if let Some(snapshot) = current {
            if s.seen != Some(snapshot.version) {
                s.seen = Some(snapshot.version);
                s.done = snapshot.terminal;
                let event = Event::default()
                    .event("status")
                    .id(snapshot.version.to_string())
                    .retry(STREAM_RETRY)
                    .data(snapshot.data_in(s.lang));
                return Some((Ok(event), s));
            }
            if snapshot.terminal {
                // The client already has the final state.
                return None;
            }
        }
        if closed {
            // The watch ended (server shutting down): the client reconnects to another process.
            return None;
        }
        tokio::select! {
            changed = s.snapshots.changed() => closed = changed.is_err(),
            _ = s.shutdown.cancelled() => return None,
        }
    }
}
