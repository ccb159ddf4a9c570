//! The one error type of the request path, typed to the edge: the person sees a clear message, a
//! stable code and, for our own failures, the request id to quote; the cause goes to the log only.
//!
//! - Refusals (not found, deleted, forbidden, a bad upload, busy) say what happened.
//! - [`AppError::Unavailable`]: the database or Redis is away for a moment (connection lost, pool
//!   exhausted, restarting): 503 with `Retry-After`.
//! - [`AppError::Internal`]: a bug or an inconsistency on our side: 500 with the request id.
//!
//! Handlers return `AppError`; its response carries an [`ErrorReply`] and [`render`] (a
//! middleware, which knows the request) writes the body: JSON for `/api/` and for clients that
//! ask for JSON, else an HTML page; both with the request id.

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::i18n::Tr;

/// Any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The code of [`AppError::SignInRequired`], which [`render`] turns into the sign-in page for
/// browsers.
const SIGN_IN_REQUIRED: &str = "sign_in_required";

/// Seconds a client is asked to wait after a 429 or 503.
const RETRY_AFTER_SECS: &str = "2";

/// What went wrong while answering a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such case (or not a case id at all).
    #[error("no such case")]
    NotFound,
    /// The case was deleted by its uploader.
    #[error("this case was deleted")]
    Gone,
    /// Only the uploader may do this.
    #[error("only the person who uploaded the photo can do this")]
    Forbidden,
    /// A clinic page without a signed-in staff member: the sign-in page for browsers, 401 for
    /// JSON clients.
    #[error("please sign in")]
    SignInRequired,
    /// A signed-in staff member whose role does not have the right.
    #[error("your role does not allow this")]
    RoleForbidden,
    /// A form post without the session's form token (forged, or from an ended session).
    #[error(
        "this form has expired or did not come from this site; go back, reload the page and try again"
    )]
    CsrfRejected,
    /// A form or query with a value we do not accept; the message says which.
    #[error("{message}")]
    Invalid {
        /// Stable code, e.g. `invalid_filter`.
        code: &'static str,
        /// What to tell the person.
        message: String,
    },
    /// The upload is not acceptable; the message says why and is shown as is.
    #[error("{message}")]
    BadUpload {
        /// Stable code, e.g. `not_an_image`.
        code: &'static str,
        /// What to tell the person.
        message: String,
        /// 413 for size, 415/422 for content, 400 for a malformed form.
        status: StatusCode,
        /// The details the message names, as arguments of the catalogue's `error-<code>`
        /// (e.g. `limit`, `format`), so the page can say it in the person's language.
        args: Vec<(&'static str, String)>,
    },
    /// Too much at once (uploads, live streams); try again shortly.
    #[error("the service is busy; please try again in a moment")]
    Overloaded,
    /// The database or Redis cannot be used right now; it may pass by itself.
    #[error("the service is unavailable for a moment; please try again shortly")]
    Unavailable(#[source] BoxError),
    /// A bug or an inconsistency on our side. The cause is logged, never shown.
    #[error("something went wrong on our side")]
    Internal(#[source] BoxError),
}

impl From<mole_storage::StorageError> for AppError {
    fn from(e: mole_storage::StorageError) -> Self {
        if e.is_transient() {
            Self::Unavailable(Box::new(e))
        } else {
            Self::Internal(Box::new(e))
        }
    }
}

impl From<mole_jobs::QueueError> for AppError {
    /// Redis trouble is transient from the request's point of view.
    fn from(e: mole_jobs::QueueError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl AppError {
    /// A bug described by a message (logged, never shown).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into().into())
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Gone => StatusCode::GONE,
            Self::Forbidden | Self::RoleForbidden | Self::CsrfRejected => StatusCode::FORBIDDEN,
            Self::SignInRequired => StatusCode::UNAUTHORIZED,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadUpload { status, .. } => *status,
            Self::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Gone => "deleted",
            Self::Forbidden | Self::RoleForbidden => "forbidden",
            Self::SignInRequired => SIGN_IN_REQUIRED,
            Self::CsrfRejected => "csrf_token_invalid",
            Self::Invalid { code, .. } => code,
            Self::BadUpload { code, .. } => code,
            Self::Overloaded => "overloaded",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The message shown to the person (never the cause of an internal error).
    pub fn public_message(&self) -> String {
        let mut m = self.to_string();
        if let Some(first) = m.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        if !m.ends_with(['.', '!', '?']) {
            m.push('.');
        }
        m
    }

    fn log(&self) {
        match self {
            Self::Internal(cause) => {
                tracing::error!(error = %chain(cause.as_ref()), "request failed (bug)")
            }
            Self::Unavailable(cause) => {
                tracing::warn!(error = %chain(cause.as_ref()), "request failed (transient)")
            }
            other => tracing::info!(code = other.code(), "request refused"),
        }
    }
}

/// `error: cause: cause of the cause`, for the log.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What an error response says, attached to it for [`render`].
#[derive(Debug, Clone)]
pub struct ErrorReply {
    /// Stable code.
    pub code: &'static str,
    /// The public message (English).
    pub message: String,
    /// The catalogue's message for it (`error-<code>`), where the person's pages say it in their
    /// language; `None` for the clinic's errors (English).
    pub message_id: Option<String>,
    /// The message's details, its arguments.
    pub args: Vec<(&'static str, String)>,
    /// Whether the request id should be quoted (our own failures).
    pub ours: bool,
}

impl ErrorReply {
    /// The message in the language of `t`: the catalogue's `error-<code>` with the details, or
    /// the English message where the catalogue has no such code.
    pub fn message_in(&self, t: Tr) -> String {
        let Some(id) = self
            .message_id
            .as_deref()
            .filter(|id| Tr::default().has(id))
        else {
            return self.message.clone();
        };
        let mut args = fluent_bundle::FluentArgs::new();
        for (name, value) in &self.args {
            args.set(*name, value.as_str());
        }
        t.with_args(id, &args)
    }
}

impl AppError {
    /// What the response says: code, public message (and its catalogue id), whether ours.
    pub fn reply(&self) -> ErrorReply {
        ErrorReply {
            code: self.code(),
            message: self.public_message(),
            message_id: match self {
                // The clinic's own errors stay in English, like its pages.
                Self::RoleForbidden
                | Self::SignInRequired
                | Self::CsrfRejected
                | Self::Invalid { .. } => None,
                other => Some(format!("error-{}", other.code().replace('_', "-"))),
            },
            args: match self {
                Self::BadUpload { args, .. } => args.clone(),
                _ => Vec::new(),
            },
            ours: matches!(self, Self::Unavailable(_) | Self::Internal(_)),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let reply = self.reply();
        let mut response = (status, reply.message.clone()).into_response();
        if matches!(self, Self::Overloaded | Self::Unavailable(_)) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response.extensions_mut().insert(reply);
        response
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: String,
    message: &'a str,
    code: &'a str,
    request_id: Option<&'a str>,
    t: Tr,
}

/// Whether the client wants JSON: the API, or an `Accept` that names JSON and not HTML.
pub fn wants_json(path: &str, headers: &HeaderMap) -> bool {
    path.starts_with("/api/")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

/// Middleware: writes the body of every [`AppError`] response for the client that asked (JSON or
/// HTML), with the request id. Other responses pass untouched.
pub async fn render(request: Request, next: Next) -> Response {
    let json = wants_json(request.uri().path(), request.headers());
    let t = request
        .extensions()
        .get::<Tr>()
        .copied()
        .unwrap_or_default();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Where a browser sent to the sign-in page comes back to: the page it asked for (a form
    // post's page is not known; the list, then).
    let back = if request.method() == axum::http::Method::GET {
        request
            .uri()
            .path_and_query()
            .map_or_else(|| "/admin/cases".to_owned(), |p| p.as_str().to_owned())
    } else {
        "/admin/cases".to_owned()
    };
    let response = next.run(request).await;
    let Some(reply) = response.extensions().get::<ErrorReply>().cloned() else {
        return response;
    };
    if reply.code == SIGN_IN_REQUIRED && !json {
        let query = serde_urlencoded::to_string([("next", back.as_str())]).unwrap_or_default();
        return axum::response::Redirect::to(&format!("/admin/sign-in?{query}")).into_response();
    }
    let (mut parts, _) = response.into_parts();
    let status = parts.status;
    let shown_id = reply.ours.then_some(request_id.as_deref()).flatten();
    let message = reply.message_in(t);
    let body = if json {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        json!({ "error": {
            "code": reply.code,
            "message": message,
            "request_id": request_id,
        } })
        .to_string()
    } else {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        let title_id = format!("http-{}", status.as_u16());
        let page = ErrorPage {
            status: status.as_u16(),
            title: if Tr::default().has(&title_id) {
                t.t(&title_id)
            } else {
                status.canonical_reason().unwrap_or("Error").to_owned()
            },
            message: &message,
            code: reply.code,
            request_id: shown_id,
            t,
        };
        match page.render() {
            Ok(html) => html,
            Err(e) => {
                tracing::error!(error = %e, "rendering the error page failed");
                message.clone()
            }
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// A panic in a handler becomes a 500 like any bug (for `CatchPanicLayer`).
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    AppError::internal(format!("handler panicked: {what}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_transient_errors_never_show_their_cause() {
        let secret = "connection to 10.1.2.3:5432 refused (password for mole)";
        for e in [
            AppError::internal(secret),
            AppError::Unavailable(secret.into()),
        ] {
            assert!(!e.public_message().contains("10.1.2.3"), "{e:?}");
            assert!(!e.to_string().contains("refused"), "{e:?}");
        }
    }

    #[test]
    fn a_bug_is_a_500_and_trouble_that_passes_is_a_503_with_retry_after() {
        let bug = AppError::internal("x").into_response();
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(bug.headers().get(header::RETRY_AFTER).is_none());
        let transient = AppError::Unavailable("x".into()).into_response();
        assert_eq!(transient.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(transient.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn the_api_and_json_clients_get_json_and_browsers_get_html() {
        let mut headers = HeaderMap::new();
        assert!(wants_json("/api/cases/1", &headers));
        assert!(!wants_json("/cases/1", &headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(wants_json("/cases", &headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/json"),
        );
        assert!(!wants_json("/cases", &headers));
    }
}
