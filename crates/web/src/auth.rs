//! Clinic staff sign-in: argon2id password hashes, sessions (tower-sessions, stored in
//! PostgreSQL by [`PgSessionStore`]), the form token that every staff form carries, sign-in
//! throttling per account name and per address, sign-out and session expiry.
//!
//! The session cookie (`mole_staff`) is sent only under `/admin`, HttpOnly, Secure and
//! SameSite=Strict; it expires after `MOLE_SESSION_IDLE_MINUTES` without a request, and a
//! session is refused `MOLE_SESSION_MAX_HOURS` after its sign-in whatever its activity. A
//! password reset or a disabled account ends every session of that account (its epoch changes).

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use mole_storage::{Role, SignInGate, SignInLimits, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::{self, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use uuid::Uuid;

use crate::AppState;
use crate::error::AppError;
use crate::identity::RequestId;

/// Name of the staff session cookie.
pub const SESSION_COOKIE: &str = "mole_staff";

/// Shortest password accepted for a staff account.
pub const MIN_PASSWORD_LEN: usize = 12;

const KEY_STAFF: &str = "staff";
const KEY_CSRF: &str = "csrf";

/// Settings of staff sign-in.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Minutes without a request after which a session ends.
    pub idle_minutes: i64,
    /// Hours after sign-in after which a session ends whatever its activity.
    pub max_hours: i64,
    /// Sign-in throttling.
    pub limits: SignInLimits,
    /// Take the client's address from the last `X-Forwarded-For` entry (behind a proxy that
    /// appends it, such as Heroku's router) instead of the connection's.
    pub trust_forwarded_for: bool,
}

/// A signed-in member of the staff, as the access rule sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffMember {
    /// Account id.
    pub id: Uuid,
    /// User name.
    pub username: String,
    /// Role.
    pub role: Role,
}

/// What the session remembers of a sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignedIn {
    account: Uuid,
    epoch: i32,
    /// Unix seconds of the sign-in.
    since: i64,
}

/// The signed-in staff member of this request, with the session's form token. Resolved once per
/// request (the account is read again every time, so a disabled account or a reset password
/// ends its sessions at once).
#[derive(Debug, Clone)]
pub struct Staff {
    /// Who.
    pub member: StaffMember,
    /// The token every form of this session must send back (`csrf` field).
    pub csrf: String,
}

impl Staff {
    /// Refuses a form whose token is not this session's.
    pub fn check_form(&self, sent: &str) -> Result<(), AppError> {
        if same_token(&self.csrf, sent) {
            Ok(())
        } else {
            Err(AppError::CsrfRejected)
        }
    }
}

fn session_of(parts: &Parts) -> Result<Session, AppError> {
    parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or_else(|| AppError::internal("a staff route is served without the session layer"))
}

fn session_error(e: tower_sessions::session::Error) -> AppError {
    AppError::Unavailable(Box::new(e))
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        if let Some(staff) = parts.extensions.get::<Staff>() {
            return Ok(staff.clone());
        }
        let session = session_of(parts)?;
        let Some(signed_in) = session
            .get::<SignedIn>(KEY_STAFF)
            .await
            .map_err(session_error)?
        else {
            return Err(AppError::SignInRequired);
        };
        let too_old = Utc::now().timestamp() - signed_in.since > app.auth.max_hours * 3600;
        let account = app.store.account(signed_in.account).await?;
        let member = match account {
            Some(a)
                if !too_old && a.disabled_at.is_none() && a.session_epoch == signed_in.epoch =>
            {
                StaffMember {
                    id: a.id,
                    username: a.username,
                    role: a.role,
                }
            }
            _ => {
                session.flush().await.map_err(session_error)?;
                return Err(AppError::SignInRequired);
            }
        };
        let csrf = match session
            .get::<String>(KEY_CSRF)
            .await
            .map_err(session_error)?
        {
            Some(t) => t,
            None => {
                let t = new_token();
                session.insert(KEY_CSRF, &t).await.map_err(session_error)?;
                t
            }
        };
        let staff = Staff { member, csrf };
        parts.extensions.insert(staff.clone());
        Ok(staff)
    }
}

/// A random 256-bit token, hex.
fn new_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Compares two tokens in time independent of where they differ.
fn same_token(expected: &str, sent: &str) -> bool {
    let (a, b) = (expected.as_bytes(), sent.as_bytes());
    a.len() == b.len() && !a.is_empty() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Hashes a password with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, the OWASP
/// recommendation) and a random salt; the PHC string holds both.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    // 16 bytes from the operating system's generator (a v4 UUID: 122 random bits), a salt
    // unique per hash, which is what a salt is for.
    let salt = SaltString::encode_b64(Uuid::new_v4().as_bytes())
        .map_err(|e| anyhow::anyhow!("making a salt failed: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Checked against when the account does not exist, so that an unknown name costs the same time
/// as a wrong password.
static DECOY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("not a password of anyone").expect("argon2 with defaults"));

/// Whether a password is acceptable for a new account or a reset.
pub fn password_problem(password: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Some(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    if password.len() > 1024 {
        return Some("the password is too long (at most 1024 bytes)".to_owned());
    }
    None
}

/// Whether a user name is acceptable: 2–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn username_problem(username: &str) -> Option<String> {
    let ok = (2..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && username
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    (!ok).then(|| {
        "a user name has 2 to 64 characters: lower-case letters, digits, '.', '_' or '-'".to_owned()
    })
}

/// The session layer of the `/admin` routes.
pub fn session_layer(store: Store, config: &AuthConfig) -> SessionManagerLayer<PgSessionStore> {
    SessionManagerLayer::new(PgSessionStore { store })
        .with_name(SESSION_COOKIE)
        .with_path("/admin")
        .with_secure(true)
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(
            config.idle_minutes,
        )))
        // Every request extends the idle expiry.
        .with_always_save(true)
}

/// tower-sessions' store in PostgreSQL (`staff_sessions`), keyed by the sha256 of the session
/// id: the table holds nothing a thief could present as a cookie.
#[derive(Debug, Clone)]
pub struct PgSessionStore {
    store: Store,
}

fn key_of(id: &Id) -> String {
    hex::encode(Sha256::digest(id.to_string().as_bytes()))
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn record_parts(
    record: &Record,
) -> session_store::Result<(String, serde_json::Value, DateTime<Utc>)> {
    let data = serde_json::to_value(&record.data)
        .map_err(|e| session_store::Error::Encode(e.to_string()))?;
    let expires = DateTime::<Utc>::from_timestamp(record.expiry_date.unix_timestamp(), 0)
        .ok_or_else(|| session_store::Error::Encode("expiry out of range".to_owned()))?;
    Ok((key_of(&record.id), data, expires))
}

#[async_trait::async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let (key, data, expires) = record_parts(record)?;
            if self
                .store
                .session_create(&key, &data, expires)
                .await
                .map_err(backend)?
            {
                return Ok(());
            }
            // A 128-bit collision: take another id.
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (key, data, expires) = record_parts(record)?;
        self.store
            .session_save(&key, &data, expires)
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some((data, expires)) = self
            .store
            .session_load(&key_of(id))
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let data = serde_json::from_value(data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date = OffsetDateTime::from_unix_timestamp(expires.timestamp())
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store
            .session_delete(&key_of(id))
            .await
            .map_err(backend)
    }
}

/// The client's address: the connection's, or (when trusted) the last `X-Forwarded-For` entry,
/// the one the nearest proxy appended.
fn client_address(parts: &Parts, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| {
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|last| last.trim().parse::<IpAddr>().ok())
        })
        .flatten();
    let ip = forwarded.or_else(|| {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
    });
    ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// The client's address, as sign-in throttling counts it.
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(parts, app.auth.trust_forwarded_for)))
    }
}

/// Where to go after signing in: a page under `/admin` of this site, else the list.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/admin")
                && !n.starts_with("/admin/sign-")
                && !n.contains("//")
                && !n.contains('\\')
                && n.chars().all(|c| !c.is_control()) =>
        {
            n.to_owned()
        }
        _ => "/admin/cases".to_owned(),
    }
}

/// The sign-in page.
#[derive(Template, WebTemplate)]
#[template(path = "admin/sign_in.html")]
pub struct SignInPage {
    /// The form token.
    pub csrf: String,
    /// Where to go afterwards.
    pub next: String,
    /// What went wrong with the last attempt.
    pub error: Option<String>,
    /// The user name typed last.
    pub username: String,
    /// Shown after signing out.
    pub signed_out: bool,
}

/// Query of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

async fn form_token(session: &Session) -> Result<String, AppError> {
    if let Some(t) = session
        .get::<String>(KEY_CSRF)
        .await
        .map_err(session_error)?
    {
        return Ok(t);
    }
    let t = new_token();
    session.insert(KEY_CSRF, &t).await.map_err(session_error)?;
    Ok(t)
}

/// `GET /admin/sign-in`.
pub async fn sign_in_page(
    session: Session,
    Query(q): Query<SignInQuery>,
) -> Result<Response, AppError> {
    let next = safe_next(q.next.as_deref());
    if session
        .get::<SignedIn>(KEY_STAFF)
        .await
        .map_err(session_error)?
        .is_some()
    {
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(SignInPage {
        csrf: form_token(&session).await?,
        next,
        error: None,
        username: String::new(),
        signed_out: q.signed_out.is_some(),
    }
    .into_response())
}

/// The sign-in form.
/// Missing fields are empty, so a form without its token is refused as such (403), not
/// as a malformed body.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct SignInForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// `POST /admin/sign-in`: the form token, then the throttle (a locked name or address is
/// refused without the password being checked), then the password.
pub async fn sign_in(
    State(app): State<AppState>,
    session: Session,
    RequestId(request_id): RequestId,
    ClientAddress(address): ClientAddress,
    Form(form): Form<SignInForm>,
) -> Result<Response, AppError> {
    let expected = session
        .get::<String>(KEY_CSRF)
        .await
        .map_err(session_error)?
        .unwrap_or_default();
    if !same_token(&expected, &form.csrf) {
        return Err(AppError::CsrfRejected);
    }
    let next = safe_next(form.next.as_deref());
    let username = form.username.trim().to_lowercase();
    let page = |status: StatusCode, error: &str| {
        let mut response = SignInPage {
            csrf: expected.clone(),
            next: next.clone(),
            error: Some(error.to_owned()),
            username: username.clone(),
            signed_out: false,
        }
        .into_response();
        *response.status_mut() = status;
        response
    };
    let account = app.store.account_by_username(&username).await?;
    if let SignInGate::Refused { retry_after_secs } = app
        .store
        .reserve_sign_in(&username, &address, &app.auth.limits)
        .await?
    {
        if let Some(a) = &account {
            app.store
                .staff_event(
                    a.actor().as_str(),
                    "sign_in_refused",
                    Some(&request_id),
                    json!({ "address": address, "retry_after_secs": retry_after_secs }),
                )
                .await?;
        }
        let minutes = retry_after_secs.div_ceil(60);
        let mut response = page(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed sign-ins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(response);
    }
    let hash = account
        .as_ref()
        .map_or_else(|| DECOY_HASH.clone(), |a| a.password_hash.clone());
    let password = form.password;
    // argon2 takes tens of milliseconds of CPU: off the async runtime.
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| AppError::internal(format!("password check panicked: {e}")))?;
    let account = match account {
        Some(a) if matches && a.disabled_at.is_none() => a,
        other => {
            if let Some(a) = other {
                app.store
                    .staff_event(
                        a.actor().as_str(),
                        "sign_in_failed",
                        Some(&request_id),
                        json!({ "address": address, "disabled": a.disabled_at.is_some() }),
                    )
                    .await?;
            }
            return Ok(page(
                StatusCode::UNAUTHORIZED,
                "Wrong user name or password.",
            ));
        }
    };
    app.store.sign_in_succeeded(&username, &address).await?;
    // A new session id at sign-in: an id planted before it (session fixation) is worthless.
    session.cycle_id().await.map_err(session_error)?;
    session
        .insert(
            KEY_STAFF,
            SignedIn {
                account: account.id,
                epoch: account.session_epoch,
                since: Utc::now().timestamp(),
            },
        )
        .await
        .map_err(session_error)?;
    session
        .insert(KEY_CSRF, new_token())
        .await
        .map_err(session_error)?;
    app.store.note_sign_in(account.id).await?;
    app.store
        .staff_event(
            account.actor().as_str(),
            "signed_in",
            Some(&request_id),
            json!({ "address": address }),
        )
        .await?;
    Ok(Redirect::to(&next).into_response())
}

/// A form that carries only the token (sign-out, disable, enable, delete).
/// Missing fields are empty, so a form without its token is refused as such (403), not
/// as a malformed body.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct TokenForm {
    /// The session's form token.
    pub csrf: String,
}

/// `POST /admin/sign-out`: ends the session (its record is deleted, the cookie removed).
pub async fn sign_out(
    State(app): State<AppState>,
    session: Session,
    staff: Staff,
    RequestId(request_id): RequestId,
    Form(form): Form<TokenForm>,
) -> Result<Response, AppError> {
    staff.check_form(&form.csrf)?;
    app.store
        .staff_event(
            mole_storage::Actor::staff(&staff.member.username).as_str(),
            "signed_out",
            Some(&request_id),
            json!({}),
        )
        .await?;
    session.flush().await.map_err(session_error)?;
    Ok(Redirect::to("/admin/sign-in?signed_out=1").into_response())
}

/// Whether a request asks for JSON (for the list's JSON form).
pub fn wants_json(headers: &HeaderMap) -> bool {
    crate::error::wants_json("", headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_argon2id_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery ", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert_ne!(
            hash,
            hash_password("correct horse battery").unwrap(),
            "salted"
        );
    }

    #[test]
    fn tokens_compare_equal_only_when_identical_and_not_empty() {
        let t = new_token();
        assert_eq!(t.len(), 64);
        assert!(same_token(&t, &t.clone()));
        assert!(!same_token(&t, &t[..63]));
        assert!(!same_token(&t, &new_token()));
        assert!(!same_token("", ""));
    }

    #[test]
    fn after_sign_in_a_browser_only_goes_to_a_page_of_the_clinic() {
        assert_eq!(
            safe_next(Some("/admin/cases?page=2")),
            "/admin/cases?page=2"
        );
        for bad in [
            "https://evil.example/admin",
            "//evil.example/admin",
            "/admin//evil.example",
            "/admin\\..\\x",
            "/cases/1",
            "/admin/sign-in",
        ] {
            assert_eq!(safe_next(Some(bad)), "/admin/cases", "{bad}");
        }
        assert_eq!(safe_next(None), "/admin/cases");
    }

    #[test]
    fn user_names_and_passwords_are_checked_before_an_account_is_made() {
        assert!(username_problem("dr.smith").is_none());
        assert!(username_problem("Dr Smith").is_some());
        assert!(username_problem("-x").is_some());
        assert!(username_problem("x").is_some());
        assert!(password_problem("short").is_some());
        assert!(password_problem("twelve chars").is_none());
    }
}
