//! `mole serve`: the upload page, case pages with live updates, the JSON API, health and metrics.
//!
//! Request path of an upload: multipart → size limit → decode by content (dimension limits) →
//! metadata stripped by re-encoding → case and image stored in PostgreSQL → job pushed to Redis →
//! 303 to the case page. The page listens on `/cases/{id}/events` (SSE), fed by one LISTEN
//! connection per process and one watch per followed case ([`live`]); without JavaScript it
//! refreshes itself. Clinic staff sign in under `/admin` ([`auth`]) to list, review, export and
//! delete cases ([`admin`]) and to see the model against their reviews ([`agreement`]). Every
//! case route decides access through [`access::CaseAccess`], every other staff page through
//! [`access::StaffAccess`]; every error leaves through [`error::AppError`].

pub mod access;
pub mod admin;
pub mod agreement;
pub mod auth;
pub mod cases;
pub mod error;
pub mod i18n;
pub mod identity;
pub mod live;
pub mod mine;
pub mod model;
pub mod ops;
pub mod upload;
pub mod views;
pub mod wait;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use mole_inference::DecodeLimits;
use mole_jobs::JobQueue;
use mole_runtime::Backends;
use mole_runtime::ConnectionArgs;
use mole_storage::Store;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::info;

use crate::live::Live;

/// Settings of `mole serve` (flags or environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Database and queue.
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// HTTP port (Heroku sets PORT).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to bind.
    #[arg(long, env = "MOLE_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Largest accepted upload, e.g. 15MB, 800KB or a number of bytes.
    #[arg(long, env = "MOLE_UPLOAD_LIMIT", default_value = "15MB", value_parser = parse_size)]
    pub upload_limit: usize,

    /// Largest accepted width or height, in pixels.
    #[arg(long, env = "MOLE_MAX_IMAGE_SIDE", default_value_t = 12_000)]
    pub max_image_side: u32,

    /// Largest accepted image, in megapixels.
    #[arg(long, env = "MOLE_MAX_MEGAPIXELS", default_value_t = 50.0)]
    pub max_megapixels: f64,

    /// Smallest accepted width or height, in pixels.
    #[arg(long, env = "MOLE_MIN_IMAGE_SIDE", default_value_t = 32)]
    pub min_image_side: u32,

    /// Uploads decoded at once (the permit is taken once the body is in, for the decode only);
    /// more get 429 with Retry-After.
    #[arg(long, env = "MOLE_MAX_UPLOADS_IN_FLIGHT", default_value_t = 8)]
    pub max_uploads_in_flight: usize,

    /// Upload bytes held in memory at once, all requests together (e.g. 128MB); a body that
    /// would go beyond gets 429 with Retry-After. At least MOLE_UPLOAD_LIMIT.
    #[arg(long, env = "MOLE_UPLOAD_BUFFER", default_value = "128MB", value_parser = parse_size)]
    pub upload_buffer: usize,

    /// Seconds a request may take, its body included (a slow sender gets 408); live streams
    /// are exempt.
    #[arg(long, env = "MOLE_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// Seconds after which a followed case is read again even without a signal.
    #[arg(long, env = "MOLE_SSE_RESYNC_SECS", default_value_t = 15)]
    pub sse_resync_secs: u64,

    /// Live streams (SSE) open at once; beyond, 429 and the page polls instead.
    #[arg(long, env = "MOLE_MAX_STREAMS", default_value_t = 2000)]
    pub max_streams: usize,

    /// A viewer's visits to a case page within this many seconds are recorded as one `viewed`
    /// event.
    #[arg(long, env = "MOLE_VIEW_WINDOW_SECS", default_value_t = 3600)]
    pub view_window_secs: u64,

    /// Model card of the model the workers serve (shown on /model).
    #[arg(long, env = "MOLE_MODEL", default_value_os_t = mole_inference::default_card())]
    pub model: PathBuf,

    /// Directory of the model's `mole eval` report (metrics.json, report.html); default: `report`
    /// beside the card.
    #[arg(long, env = "MOLE_MODEL_REPORT")]
    pub model_report: Option<PathBuf>,

    /// Minutes without a request after which a staff session ends.
    #[arg(long, env = "MOLE_SESSION_IDLE_MINUTES", default_value_t = 30)]
    pub session_idle_minutes: u32,

    /// Hours after sign-in after which a staff session ends, however active.
    #[arg(long, env = "MOLE_SESSION_MAX_HOURS", default_value_t = 12)]
    pub session_max_hours: u32,

    /// Wrong passwords in a row after which an account name is locked (the next attempt is
    /// refused without checking its password).
    #[arg(long, env = "MOLE_SIGNIN_MAX_FAILURES", default_value_t = 5)]
    pub signin_max_failures: u32,

    /// Failed sign-ins from one address after which it is locked.
    #[arg(long, env = "MOLE_SIGNIN_ADDRESS_MAX_FAILURES", default_value_t = 20)]
    pub signin_address_max_failures: u32,

    /// Seconds a lock lasts after the last failure.
    #[arg(long, env = "MOLE_SIGNIN_LOCKOUT_SECS", default_value_t = 900)]
    pub signin_lockout_secs: u64,

    /// Take the client's address for sign-in throttling from the last X-Forwarded-For entry
    /// (only behind a proxy that appends it, such as Heroku's router).
    #[arg(long, env = "MOLE_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,
}

/// Parses `15MB`, `800KB`, `2MiB` or plain bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 15MB)"))?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    Ok((number * factor) as usize)
}

impl ServeArgs {
    /// Checks the settings before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.connection.validate().map_err(anyhow::Error::msg)?;
        if self.upload_limit < 1024 || self.upload_limit > 100 * 1024 * 1024 {
            bail!(
                "MOLE_UPLOAD_LIMIT must be between 1KB and 100MB, got {} bytes",
                self.upload_limit
            );
        }
        if self.min_image_side == 0 || self.min_image_side > self.max_image_side {
            bail!(
                "MOLE_MIN_IMAGE_SIDE ({}) must be between 1 and MOLE_MAX_IMAGE_SIDE ({})",
                self.min_image_side,
                self.max_image_side
            );
        }
        if !(self.max_megapixels > 0.0 && self.max_megapixels <= 500.0) {
            bail!(
                "MOLE_MAX_MEGAPIXELS must be in (0, 500], got {}",
                self.max_megapixels
            );
        }
        if self.max_uploads_in_flight == 0 {
            bail!("MOLE_MAX_UPLOADS_IN_FLIGHT must be at least 1");
        }
        if self.upload_buffer < self.upload_limit {
            bail!(
                "MOLE_UPLOAD_BUFFER ({} bytes) must be at least MOLE_UPLOAD_LIMIT ({} bytes)",
                self.upload_buffer,
                self.upload_limit
            );
        }
        if self.request_timeout_secs == 0 {
            bail!("MOLE_REQUEST_TIMEOUT_SECS must be at least 1");
        }
        if self.sse_resync_secs == 0 {
            bail!("MOLE_SSE_RESYNC_SECS must be at least 1");
        }
        if self.max_streams == 0 {
            bail!("MOLE_MAX_STREAMS must be at least 1");
        }
        if self.session_idle_minutes == 0 || self.session_max_hours == 0 {
            bail!("MOLE_SESSION_IDLE_MINUTES and MOLE_SESSION_MAX_HOURS must be at least 1");
        }
        if self.signin_max_failures == 0 || self.signin_address_max_failures == 0 {
            bail!(
                "MOLE_SIGNIN_MAX_FAILURES and MOLE_SIGNIN_ADDRESS_MAX_FAILURES must be at least 1"
            );
        }
        if self.signin_lockout_secs == 0 {
            bail!("MOLE_SIGNIN_LOCKOUT_SECS must be at least 1");
        }
        if !self.model.is_file() {
            bail!(
                "MOLE_MODEL {} is not a file (the model card, e.g. {})",
                self.model.display(),
                mole_inference::DEFAULT_CARD
            );
        }
        Ok(())
    }

    fn auth_config(&self) -> auth::AuthConfig {
        auth::AuthConfig {
            idle_minutes: i64::from(self.session_idle_minutes),
            max_hours: i64::from(self.session_max_hours),
            limits: mole_storage::SignInLimits {
                per_account: self.signin_max_failures.min(i32::MAX as u32) as i32,
                per_address: self.signin_address_max_failures.min(i32::MAX as u32) as i32,
                lockout: Duration::from_secs(self.signin_lockout_secs),
            },
            trust_forwarded_for: self.trust_forwarded_for,
        }
    }

    fn app_config(&self) -> AppConfig {
        let max_pixels = (self.max_megapixels * 1e6) as u64;
        AppConfig {
            upload_limit: self.upload_limit,
            decode_limits: DecodeLimits {
                max_width: self.max_image_side,
                max_height: self.max_image_side,
                max_pixels,
                // Room for the decoded RGBA buffer plus the decoder's own working memory.
                max_alloc: max_pixels.saturating_mul(4).saturating_add(64 << 20),
            },
            min_image_side: self.min_image_side,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            view_window: Duration::from_secs(self.view_window_secs),
        }
    }
}

/// Runtime settings of the request handlers.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Largest upload in bytes.
    pub upload_limit: usize,
    /// Decoding limits.
    pub decode_limits: DecodeLimits,
    /// Smallest accepted side.
    pub min_image_side: u32,
    /// How long a request (not a stream) may take.
    pub request_timeout: Duration,
    /// Views of one viewer within this window are recorded once.
    pub view_window: Duration,
}

/// Shared state of the handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The job queue.
    pub queue: JobQueue,
    /// Live updates.
    pub live: Live,
    /// Settings.
    pub config: Arc<AppConfig>,
    /// Upload decoding slots.
    pub uploads: Arc<Semaphore>,
    /// Upload bytes in memory, in KiB ([`upload::BufferCharge`]).
    pub upload_buffer: Arc<Semaphore>,
    /// Cancelled at shutdown (ends live streams).
    pub shutdown: CancellationToken,
    /// The model, for `/model`.
    pub model: Arc<model::ModelInfo>,
    /// Staff sign-in settings.
    pub auth: Arc<auth::AuthConfig>,
}

/// The Content-Security-Policy of every page: scripts and styles from our own files only (no
/// inline script or style), no framing, forms post only to us. Images from us, and `blob:` for
/// the upload form's preview of the photo the person chose (a local object URL, never sent).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' blob:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// `GET /static/{file}`: the page's stylesheet and script, compiled in.
async fn static_file(
    axum::extract::Path(file): axum::extract::Path<String>,
) -> axum::response::Response {
    let (body, content_type) = match file.as_str() {
        "mole.css" => (
            include_str!("../../../static/mole.css"),
            "text/css; charset=utf-8",
        ),
        "case.js" => (
            include_str!("../../../static/case.js"),
            "text/javascript; charset=utf-8",
        ),
        "upload.js" => (
            include_str!("../../../static/upload.js"),
            "text/javascript; charset=utf-8",
        ),
        "admin.js" => (
            include_str!("../../../static/admin.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return error::AppError::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The router with every route and middleware.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.upload_limit + 256 * 1024;
    let pages = Router::new()
        .route("/", get(upload::index))
        .route(
            "/cases",
            post(upload::create).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route(
            "/api/cases",
            post(upload::create).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/cases/{id}", get(cases::page))
        .route("/cases/{id}/panel", get(cases::panel))
        .route("/cases/{id}/history", get(cases::history))
        .route("/cases/{id}/wait", get(wait::wait))
        .route("/my-cases", get(mine::page))
        .route("/cases/{id}/image", get(cases::image))
        .route("/cases/{id}/delete", post(cases::delete_form))
        .route(
            "/api/cases/{id}",
            get(cases::json).delete(cases::delete_json),
        )
        .route("/model", get(model::page))
        .route("/model/report", get(model::report))
        .route("/model/card.json", get(model::card))
        .route("/static/{file}", get(static_file))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        // Bounds every request, its body included: a slow sender gets 408 and lets go.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ));
    // Event streams live long: no timeout (capped in number instead, MOLE_MAX_STREAMS).
    let streams = Router::new().route("/cases/{id}/events", get(cases::events));
    // The clinic's pages: the only routes with a session (its cookie is sent under /admin only).
    let staff = Router::new()
        .route("/admin", get(admin::home))
        .route(
            "/admin/sign-in",
            get(auth::sign_in_page).post(auth::sign_in),
        )
        .route("/admin/sign-out", post(auth::sign_out))
        .route("/admin/cases", get(admin::list))
        .route("/admin/cases.csv", get(admin::export))
        .route("/admin/cases/{id}", get(admin::case))
        .route("/admin/cases/{id}/image", get(admin::image))
        .route("/admin/cases/{id}/review", post(admin::review))
        .route("/admin/cases/{id}/delete", post(admin::delete))
        .route("/admin/agreement", get(agreement::page))
        .route("/admin/users", get(admin::users).post(admin::add_user))
        .route("/admin/users/{id}/{action}", post(admin::set_disabled))
        .layer(auth::session_layer(state.store.clone(), &state.auth))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ));

    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    pages
        .merge(streams)
        .merge(staff)
        .with_state(state)
        // A panicking handler is a bug like any other: 500 with the request id.
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn(error::render))
        // The person's language, before the error pages are written (they are in it too).
        .layer(axum::middleware::from_fn(i18n::choose_language))
        .layer(header("content-security-policy", CONTENT_SECURITY_POLICY))
        // Case URLs are capabilities: never leak them in a Referer.
        .layer(header("referrer-policy", "no-referrer"))
        .layer(header("x-content-type-options", "nosniff"))
        .layer(header("x-frame-options", "DENY"))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<axum::body::Body>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "http",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                )
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// A bound, not yet running web server.
pub struct Server {
    listener: tokio::net::TcpListener,
    app: Router,
    state: AppState,
    listener_task: tokio::task::JoinHandle<()>,
    /// Whether the server made its backends (and so closes them when it stops).
    owns_backends: bool,
}

impl Server {
    /// Validates the settings, connects to PostgreSQL and Redis, migrates, starts listening for
    /// case events, and binds the port (`PORT=0` picks a free one; see [`Server::local_addr`]):
    /// `mole serve`, one of the scaled mode's web processes.
    pub async fn bind(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<Self> {
        args.validate()?;
        args.connection
            .require_scaled("mole serve")
            .map_err(anyhow::Error::msg)?;
        let backends = Backends::connect_as_server(&args.connection).await?;
        let mut server = Self::bind_with(args, backends, shutdown).await?;
        server.owns_backends = true;
        Ok(server)
    }

    /// [`Server::bind`] on backends made by the caller (the embedded mode's one process shares
    /// them with its worker), which also closes them.
    pub async fn bind_with(
        args: ServeArgs,
        backends: Backends,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        args.validate()?;
        mole_runtime::telemetry::prometheus();
        info!(config = ?args, data = %backends.store.describe(), "starting web server");
        let report_dir = args
            .model_report
            .clone()
            .unwrap_or_else(|| model::default_report_dir(&args.model));
        let model_info = Arc::new(model::ModelInfo::load(&args.model, &report_dir)?);
        let Backends { store, queue, .. } = backends;
        // Reads of live watches take at most half the pool: uploads always find a connection.
        let live_reads = (args.connection.db_max_connections as usize / 2).max(1);
        let live = Live::new(
            store.clone(),
            Arc::new(cases::snapshot),
            args.max_streams,
            live_reads,
            Duration::from_secs(args.sse_resync_secs),
            shutdown.clone(),
        );
        let listener_task = tokio::spawn(live.clone().run_listener());
        // Expired staff sessions are refused when read; this removes their rows.
        let sweeper = store.clone();
        let sweep_stop = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(600));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = sweep_stop.cancelled() => return,
                }
                if let Err(e) = sweeper.delete_expired_sessions().await {
                    tracing::warn!(error = %e, "removing expired staff sessions failed");
                }
            }
        });
        let state = AppState {
            store,
            queue,
            live,
            config: Arc::new(args.app_config()),
            uploads: Arc::new(Semaphore::new(args.max_uploads_in_flight)),
            upload_buffer: Arc::new(Semaphore::new(upload::kib(args.upload_buffer))),
            shutdown,
            model: model_info,
            auth: Arc::new(args.auth_config()),
        };
        let addr = SocketAddr::new(args.bind, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        Ok(Self {
            listener,
            app: router(state.clone()),
            state,
            listener_task,
            owns_backends: false,
        })
    }

    /// The live updates of this server (for tests and benchmarks: open streams, reads).
    pub fn live(&self) -> Live {
        self.state.live.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the shutdown token is cancelled; open streams end, requests in flight finish.
    pub async fn run(self) -> anyhow::Result<()> {
        info!(addr = %self.listener.local_addr()?, "listening");
        let shutdown = self.state.shutdown.clone();
        // Small responses (JSON, SSE events) go out at once, not after the peer's delayed ACK.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        // The peer's address reaches the handlers (sign-in throttling per address).
        axum::serve(
            listener,
            self.app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serving HTTP")?;
        let _ = self.listener_task.await;
        if self.owns_backends {
            self.state.store.close().await;
        }
        info!("web server stopped");
        Ok(())
    }
}

/// Binds and serves until `shutdown` (what `mole serve` runs).
pub async fn serve(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    Server::bind(args, shutdown).await?.run().await
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("15MB"), Ok(15 * 1024 * 1024));
        assert_eq!(parse_size("800 KB"), Ok(800 * 1024));
        assert_eq!(parse_size("1.5M"), Ok(1536 * 1024));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }
}
