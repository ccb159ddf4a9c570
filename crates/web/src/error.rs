//! The one error type of the request path: logs the cause, shows the person a clear message with
//! a stable code, never internal details.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
    /// The upload is not acceptable; the message says why and is shown as is.
    #[error("{message}")]
    BadUpload {
        /// Stable code, e.g. `not_an_image`.
        code: &'static str,
        /// What to tell the person.
        message: String,
        /// 413 for size, 415/422 for content, 400 for a malformed form.
        status: StatusCode,
    },
    /// Too many uploads at once; try again shortly.
    #[error("the service is busy; please try again in a moment")]
    Overloaded,
    /// The database or queue failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<mole_storage::StorageError> for AppError {
    fn from(e: mole_storage::StorageError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Gone => StatusCode::GONE,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadUpload { status, .. } => *status,
            Self::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Gone => "deleted",
            Self::Forbidden => "forbidden",
            Self::BadUpload { code, .. } => code,
            Self::Overloaded => "overloaded",
            Self::Internal(_) => "unavailable",
        }
    }

    /// The message shown to the person.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => {
                "Something went wrong on our side. Please try again in a minute.".to_owned()
            }
            other => {
                let mut m = other.to_string();
                if let Some(first) = m.get_mut(0..1) {
                    first.make_ascii_uppercase();
                }
                m
            }
        }
    }

    /// The error as JSON (`{"error": {"code", "message"}}`), for API clients.
    pub fn into_json_response(self) -> Response {
        self.log();
        let status = self.status();
        let body = json!({ "error": { "code": self.code(), "message": self.public_message() } });
        let mut response = (status, axum::Json(body)).into_response();
        self.decorate(&mut response);
        response
    }

    fn log(&self) {
        match self {
            Self::Internal(cause) => tracing::error!(cause = %cause, "request failed"),
            other => tracing::info!(code = other.code(), "request refused"),
        }
    }

    fn decorate(&self, response: &mut Response) {
        if matches!(self, Self::Overloaded | Self::Internal(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    title: &'static str,
    message: String,
    code: &'static str,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let page = ErrorPage {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: self.public_message(),
            code: self.code(),
        };
        let mut response = match page.render() {
            Ok(html) => (status, axum::response::Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "rendering the error page failed");
                (status, self.public_message()).into_response()
            }
        };
        self.decorate(&mut response);
        response
    }
}
