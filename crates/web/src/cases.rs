//! A case: its page (with live updates), its JSON, its event stream, its photo, its deletion.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::Stream;
use mole_storage::{Actor, Case, CaseEvent};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{Instrument, debug, warn};
use uuid::Uuid;

use crate::AppState;
use crate::error::AppError;
use crate::identity::{RequestId, Uploader};
use crate::live::HubEvent;
use crate::views::CaseView;

/// The case page.
#[derive(Template, WebTemplate)]
#[template(path = "case.html")]
pub struct CasePage {
    /// The case.
    pub view: CaseView,
    /// Whether the visitor uploaded it (may delete it, sees its photo and history).
    pub is_uploader: bool,
    /// The audit trail (shown to the uploader).
    pub events: Vec<EventLine>,
}

/// The live part of the case page, re-fetched by the page's script when the status changes.
#[derive(Template, WebTemplate)]
#[template(path = "case_panel.html")]
pub struct CasePanel {
    /// The case.
    pub view: CaseView,
    /// Whether the visitor uploaded it.
    pub is_uploader: bool,
}

/// One line of the history shown on the page.
#[derive(Debug, Clone)]
pub struct EventLine {
    /// Time, `HH:MM:SS.mmm UTC`.
    pub at: String,
    /// Event kind.
    pub kind: String,
    /// Who.
    pub actor: String,
}

impl From<&CaseEvent> for EventLine {
    fn from(e: &CaseEvent) -> Self {
        Self {
            at: e.at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
            kind: e.kind.as_str().to_owned(),
            actor: e.actor.clone(),
        }
    }
}

fn parse_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

async fn load_case(app: &AppState, id: Uuid) -> Result<Case, AppError> {
    app.store.case(id).await?.ok_or(AppError::NotFound)
}

/// The case's view, reading the prediction only when there is one.
pub async fn load_view(app: &AppState, case: &Case) -> Result<CaseView, AppError> {
    let prediction = if case.status == mole_storage::CaseStatus::Done && !case.is_deleted() {
        app.store.prediction(case.id).await?
    } else {
        None
    };
    Ok(CaseView::new(case, prediction.as_ref()))
}

/// `GET /cases/{id}`: the page. Records who viewed it.
pub async fn page(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RequestId(request_id): RequestId,
    uploader: Uploader,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let case = load_case(&app, id).await?;
    if case.is_deleted() {
        return Err(AppError::Gone);
    }
    let is_uploader = uploader.owns(&case.uploader);
    let actor = if is_uploader {
        Actor::uploader(&case.uploader)
    } else {
        Actor::visitor()
    };
    app.store.record_view(id, &actor, Some(&request_id)).await?;
    let view = load_view(&app, &case).await?;
    let events = if is_uploader {
        app.store
            .events(id)
            .await?
            .iter()
            .map(EventLine::from)
            .collect()
    } else {
        Vec::new()
    };
    Ok(CasePage {
        view,
        is_uploader,
        events,
    }
    .into_response())
}

/// `GET /cases/{id}/panel`: the live part of the page as an HTML fragment.
pub async fn panel(
    State(app): State<AppState>,
    Path(id): Path<String>,
    uploader: Uploader,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let case = load_case(&app, id).await?;
    let is_uploader = uploader.owns(&case.uploader);
    let view = load_view(&app, &case).await?;
    Ok(CasePanel { view, is_uploader }.into_response())
}

/// `GET /api/cases/{id}`: the case as JSON (also the polling fallback of the page).
pub async fn json(State(app): State<AppState>, Path(id): Path<String>) -> Response {
    let result = async {
        let id = parse_id(&id)?;
        let case = load_case(&app, id).await?;
        load_view(&app, &case).await
    }
    .await;
    match result {
        Ok(view) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(view),
        )
            .into_response(),
        Err(e) => e.into_json_response(),
    }
}

/// `GET /cases/{id}/image`: the stored (metadata-free) photo.
pub async fn image(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let case = load_case(&app, id).await?;
    if case.is_deleted() {
        return Err(AppError::Gone);
    }
    let image = app.store.image(id).await?.ok_or(AppError::NotFound)?;
    let content_type = HeaderValue::from_str(&image.content_type)
        .map_err(|e| AppError::Internal(e.to_string()))?;
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
    id: &str,
    request_id: &str,
    uploader: &Uploader,
) -> Result<(), AppError> {
    let id = parse_id(id)?;
    let case = load_case(app, id).await?;
    if !uploader.owns(&case.uploader) {
        return Err(AppError::Forbidden);
    }
    if !app
        .store
        .delete_case(id, &Actor::uploader(&case.uploader), Some(request_id))
        .await?
    {
        return Err(AppError::Gone);
    }
    Ok(())
}

/// `POST /cases/{id}/delete`: the page's delete button (works without JavaScript).
pub async fn delete_form(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RequestId(request_id): RequestId,
    uploader: Uploader,
) -> Result<Response, AppError> {
    delete_case(&app, &id, &request_id, &uploader).await?;
    Ok(Redirect::to("/?deleted").into_response())
}

/// `DELETE /api/cases/{id}`: deletion for API clients; 204 when done.
pub async fn delete_json(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RequestId(request_id): RequestId,
    uploader: Uploader,
) -> Response {
    match delete_case(&app, &id, &request_id, &uploader).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_json_response(),
    }
}

/// `GET /cases/{id}/events`: server-sent events. Sends `status` (the case JSON) now and on every
/// change, and ends after a final state (done, failed, deleted).
pub async fn events(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let id = parse_id(&id)?;
    // 404 up front rather than an empty stream.
    load_case(&app, id).await?;
    let (tx, rx) = mpsc::channel(8);
    // Subscribe before the first read, so no change can fall between the read and the listen.
    let signals = app.hub.subscribe();
    let span = tracing::info_span!("sse", case_id = %id);
    tokio::spawn(stream_case(app, id, signals, tx).instrument(span));
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

struct StreamGauge;

impl StreamGauge {
    fn open() -> Self {
        metrics::gauge!("mole_sse_streams").increment(1.0);
        StreamGauge
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        metrics::gauge!("mole_sse_streams").decrement(1.0);
    }
}

async fn stream_case(
    app: AppState,
    id: Uuid,
    mut signals: broadcast::Receiver<HubEvent>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
) {
    let _gauge = StreamGauge::open();
    let resync = Duration::from_secs(app.config.sse_resync_secs);
    let mut last: Option<(&'static str, bool)> = None;
    loop {
        let view = match load_case(&app, id).await {
            Ok(case) => load_view(&app, &case).await,
            Err(e) => Err(e),
        };
        match view {
            Ok(view) => {
                let key = (view.status, view.result.is_some());
                if last != Some(key) {
                    last = Some(key);
                    let event = Event::default()
                        .event("status")
                        .json_data(&view)
                        .expect("a case view serialises");
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    if view.is_terminal() {
                        debug!(status = view.status, "final state sent; closing the stream");
                        return;
                    }
                }
            }
            // The database is away: keep the stream, try again on the next signal or tick.
            Err(e) => warn!(error = %e, "cannot read the case for its stream"),
        }
        // Wait for something that concerns this case, or re-read after `resync` regardless.
        let deadline = tokio::time::sleep(resync);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = app.shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = &mut deadline => break,
                signal = signals.recv() => match signal {
                    Ok(HubEvent::Changed(changed)) if changed == id => break,
                    Ok(HubEvent::Changed(_)) => continue,
                    Ok(HubEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}
