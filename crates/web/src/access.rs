//! Who may do what to a case: one rule ([`allows`]), applied once per request by the
//! [`CaseAccess`] extractor that every case route takes.
//!
//! The case URL holds an unguessable id, so anyone with the link may see the verdict (the page,
//! its JSON, its live stream). The photo, the history and deletion belong to the uploader, known
//! by the `mole_uploader` cookie. Clinic staff will be one more [`Caller`], allowed in [`allows`]
//! and nowhere else.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use mole_storage::{Actor, CaseState};
use uuid::Uuid;

use crate::AppState;
use crate::error::AppError;
use crate::identity::Uploader;

/// Who asks, relative to the case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The browser that uploaded the photo (its cookie's hash is the case's `uploader`).
    Uploader {
        /// sha256 (hex) of the cookie token.
        token_hash: String,
    },
    /// Anyone else with the link, with or without a cookie of their own.
    Visitor {
        /// sha256 (hex) of their cookie token, when they have one.
        token_hash: Option<String>,
    },
}

impl Caller {
    /// The caller as written in the audit trail. Visitors with a cookie are told apart by a
    /// prefix of its hash; visitors without one are all `visitor`.
    pub fn actor(&self) -> Actor {
        match self {
            Self::Uploader { token_hash } => Actor::uploader(token_hash),
            Self::Visitor {
                token_hash: Some(hash),
            } => Actor::visitor_with(hash),
            Self::Visitor { token_hash: None } => Actor::visitor(),
        }
    }
}

/// What a request wants to do with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// See the status and the verdict: the page, its JSON, its live stream.
    SeeVerdict,
    /// See the photo.
    SeePhoto,
    /// See the audit history.
    SeeHistory,
    /// Delete the case and its photo.
    Delete,
}

/// The access rule, the only one: whether `caller` may exercise `right`.
pub fn allows(caller: &Caller, right: Right) -> bool {
    match right {
        // The link is the capability.
        Right::SeeVerdict => true,
        // The uploader's own; clinic staff join here once accounts exist.
        Right::SeePhoto | Right::SeeHistory | Right::Delete => {
            matches!(caller, Caller::Uploader { .. })
        }
    }
}

/// A [`Right`] as a type, so that a route states what it needs in its signature.
pub trait Need: Send + Sync + 'static {
    /// The right.
    const RIGHT: Right;
}

/// Needs [`Right::SeeVerdict`].
#[derive(Debug)]
pub struct SeeVerdict;
/// Needs [`Right::SeePhoto`].
#[derive(Debug)]
pub struct SeePhoto;
/// Needs [`Right::Delete`].
#[derive(Debug)]
pub struct Delete;

impl Need for SeeVerdict {
    const RIGHT: Right = Right::SeeVerdict;
}
impl Need for SeePhoto {
    const RIGHT: Right = Right::SeePhoto;
}
impl Need for Delete {
    const RIGHT: Right = Right::Delete;
}

/// A case the request may act on with the right `N`: the id parsed from the path, the case
/// loaded (with its prediction, one statement), deletion checked (410), the caller known and
/// allowed (403). Unknown ids and malformed ones are both 404.
#[derive(Debug)]
pub struct CaseAccess<N: Need = SeeVerdict> {
    /// The case as stored, with its prediction and version.
    pub state: CaseState,
    /// Who asks.
    pub caller: Caller,
    need: PhantomData<N>,
}

impl<N: Need> CaseAccess<N> {
    /// The case id.
    pub fn id(&self) -> Uuid {
        self.state.case.id
    }

    /// Whether the caller may also exercise `right` (e.g. the page shows the photo).
    pub fn may(&self, right: Right) -> bool {
        allows(&self.caller, right)
    }
}

impl<N: Need> FromRequestParts<AppState> for CaseAccess<N> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, app)
            .await
            .map_err(|_| AppError::NotFound)?;
        let id = Uuid::parse_str(&raw).map_err(|_| AppError::NotFound)?;
        let uploader = match Uploader::from_request_parts(parts, app).await {
            Ok(u) => u,
            Err(never) => match never {},
        };
        let state = app.store.case_state(id).await?.ok_or(AppError::NotFound)?;
        if state.case.is_deleted() {
            return Err(AppError::Gone);
        }
        let caller = match uploader.hash() {
            Some(hash) if hash == state.case.uploader => Caller::Uploader { token_hash: hash },
            token_hash => Caller::Visitor { token_hash },
        };
        if !allows(&caller, N::RIGHT) {
            return Err(AppError::Forbidden);
        }
        Ok(Self {
            state,
            caller,
            need: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anyone_with_the_link_sees_the_verdict_and_only_the_uploader_the_rest() {
        let uploader = Caller::Uploader {
            token_hash: "a".repeat(64),
        };
        let visitors = [
            Caller::Visitor { token_hash: None },
            Caller::Visitor {
                token_hash: Some("b".repeat(64)),
            },
        ];
        for right in [
            Right::SeeVerdict,
            Right::SeePhoto,
            Right::SeeHistory,
            Right::Delete,
        ] {
            assert!(allows(&uploader, right), "{right:?}");
            for visitor in &visitors {
                assert_eq!(
                    allows(visitor, right),
                    right == Right::SeeVerdict,
                    "{visitor:?} {right:?}"
                );
            }
        }
    }

    #[test]
    fn visitors_with_a_cookie_are_told_apart_in_the_trail_without_their_token() {
        let hash = "c0ffee".repeat(10);
        let actor = Caller::Visitor {
            token_hash: Some(hash.clone()),
        }
        .actor();
        assert!(actor.as_str().starts_with("visitor:"));
        assert!(!actor.as_str().contains(&hash));
        assert_eq!(
            Caller::Visitor { token_hash: None }.actor().as_str(),
            "visitor"
        );
    }
}
