//! Who is asking: the request id that follows a case into its job, and the uploader's browser
//! token (a random cookie) that gives the right to delete a case. Accounts come later; until
//! then the cookie is the only identity, and only its sha256 is stored.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

/// Name of the uploader cookie.
pub const UPLOADER_COOKIE: &str = "mole_uploader";

/// The request's id (from `x-request-id`, set by the router or by us), cleaned for logs and
/// storage: at most 64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let raw = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let clean: String = raw
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(64)
            .collect();
        Ok(RequestId(if clean.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            clean
        }))
    }
}

/// The uploader token from the cookie, if the browser sent one.
#[derive(Debug, Clone)]
pub struct Uploader {
    token: Option<String>,
    secure: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Uploader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Uploader {
            token: cookie(&parts.headers, UPLOADER_COOKIE).filter(|t| valid_token(t)),
            secure: parts
                .headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")),
        })
    }
}

impl Uploader {
    /// The stored identity: sha256 (hex) of the token, if there is one.
    pub fn hash(&self) -> Option<String> {
        self.token.as_deref().map(hash_token)
    }

    /// Whether the request comes from the case's uploader.
    pub fn owns(&self, uploader_hash: &str) -> bool {
        self.hash().is_some_and(|h| h == uploader_hash)
    }

    /// The token, creating one when the browser has none; the second value is the
    /// `Set-Cookie` header to send when it was created.
    pub fn ensure(&self) -> (String, Option<HeaderValue>) {
        match &self.token {
            Some(t) => (t.clone(), None),
            None => {
                let token = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                // One year; HttpOnly (no script needs it); Lax so the upload form's POST carries
                // it; Secure when the client came over HTTPS (Heroku's router says so).
                let secure = if self.secure { "; Secure" } else { "" };
                let cookie = format!(
                    "{UPLOADER_COOKIE}={token}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{secure}"
                );
                let header = HeaderValue::from_str(&cookie).expect("token is hex");
                (token, Some(header))
            }
        }
    }
}

/// sha256 (hex) of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_token(t: &str) -> bool {
    (32..=128).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The value of the cookie `name`, if the request carries it.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uploader_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; mole_uploader=abc123; b=2"),
        );
        assert_eq!(cookie(&headers, UPLOADER_COOKIE).as_deref(), Some("abc123"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn only_long_hex_tokens_are_accepted() {
        assert!(valid_token(&"a1".repeat(32)));
        assert!(!valid_token("short"));
        assert!(!valid_token(&"zz".repeat(32)));
    }

    #[test]
    fn a_new_token_comes_with_a_http_only_cookie_and_hashes_stably() {
        let (token, set) = Uploader {
            token: None,
            secure: true,
        }
        .ensure();
        let set = set.expect("a new token sets a cookie");
        let set = set.to_str().unwrap();
        assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains(&token));
        assert_eq!(hash_token(&token), hash_token(&token));
        assert_ne!(hash_token(&token), token);
    }
}
