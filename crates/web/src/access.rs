//! Who may do what: one rule ([`allows`]), applied once per request by the [`CaseAccess`]
//! extractor that every case route takes, and by [`StaffAccess`] on the clinic's pages that are
//! not about one case.
//!
//! The case URL holds an unguessable id, so anyone with the link may see the verdict (the page,
//! its JSON, its live stream). The photo, the history and deletion belong to the uploader, known
//! by the `mole_uploader` cookie. Clinic staff, signed in under `/admin`, are a third kind of
//! caller: a reviewer reads every case, its photo and history, reviews it and sees the list, the
//! export and the agreement page; an admin may also delete cases and manage accounts. Roles map
//! to rights in [`allows`] and nowhere else.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use mole_storage::{Actor, CaseState, Role};
use tower_sessions::Session;
use uuid::Uuid;

use crate::AppState;
use crate::auth::{Staff, StaffMember};
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
    /// A signed-in member of the clinic's staff (only under `/admin`).
    Staff(StaffMember),
}

impl Caller {
    /// The caller as written in the audit trail. Visitors with a cookie are told apart by a
    /// prefix of its hash; visitors without one are all `visitor`; staff by user name.
    pub fn actor(&self) -> Actor {
        match self {
            Self::Uploader { token_hash } => Actor::uploader(token_hash),
            Self::Visitor {
                token_hash: Some(hash),
            } => Actor::visitor_with(hash),
            Self::Visitor { token_hash: None } => Actor::visitor(),
            Self::Staff(member) => Actor::staff(&member.username),
        }
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// See a case's status and verdict: the page, its JSON, its live stream.
    SeeVerdict,
    /// See a case's photo.
    SeePhoto,
    /// See a case's audit history.
    SeeHistory,
    /// Delete a case and its photo.
    Delete,
    /// Review a case (or amend one's review).
    Review,
    /// See what remains of a deleted case: its tombstone and history.
    SeeTombstone,
    /// See the list of past cases, export it, and see the model against the reviewers.
    ListCases,
    /// Add, disable and enable staff accounts.
    ManageAccounts,
}

/// The access rule, the only one: whether `caller` may exercise `right`.
pub fn allows(caller: &Caller, right: Right) -> bool {
    use Right::*;
    match caller {
        // The link is the capability for the verdict.
        Caller::Visitor { .. } => right == SeeVerdict,
        // The uploader's own case.
        Caller::Uploader { .. } => matches!(right, SeeVerdict | SeePhoto | SeeHistory | Delete),
        Caller::Staff(member) => match member.role {
            Role::Reviewer => matches!(
                right,
                SeeVerdict | SeePhoto | SeeHistory | Review | SeeTombstone | ListCases
            ),
            Role::Admin => true,
        },
    }
}

/// A [`Right`] as a type, so that a route states what it needs in its signature.
pub trait Need: Send + Sync + 'static {
    /// The right.
    const RIGHT: Right;
}

macro_rules! needs {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;
        impl Need for $name {
            const RIGHT: Right = Right::$name;
        }
    )*};
}

needs!(
    /// Needs [`Right::SeeVerdict`].
    SeeVerdict,
    /// Needs [`Right::SeePhoto`].
    SeePhoto,
    /// Needs [`Right::SeeHistory`].
    SeeHistory,
    /// Needs [`Right::Delete`].
    Delete,
    /// Needs [`Right::Review`].
    Review,
    /// Needs [`Right::ListCases`].
    ListCases,
    /// Needs [`Right::ManageAccounts`].
    ManageAccounts,
);

/// The refusal for a caller without the right: staff are told their role does not allow it.
fn refusal(caller: &Caller) -> AppError {
    match caller {
        Caller::Staff(_) => AppError::RoleForbidden,
        _ => AppError::Forbidden,
    }
}

/// A case the request may act on with the right `N`: the id parsed from the path, the caller
/// known (under `/admin`, the signed-in staff member, else the uploader or a visitor), the case
/// loaded (with its prediction, one statement), deletion checked (410, except the history for
/// those who may see tombstones), the caller allowed (403). Unknown ids and malformed ones are
/// both 404; under `/admin` without a session the answer is the sign-in page (or 401) before the
/// case is even looked up.
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
        // Staff pages carry a session; there, only staff are callers.
        let staff = if parts.extensions.get::<Session>().is_some() {
            Some(Staff::from_request_parts(parts, app).await?.member)
        } else {
            None
        };
        let uploader = match Uploader::from_request_parts(parts, app).await {
            Ok(u) => u,
            Err(never) => match never {},
        };
        let state = app.store.case_state(id).await?.ok_or(AppError::NotFound)?;
        let caller = match (staff, uploader.hash()) {
            (Some(member), _) => Caller::Staff(member),
            (None, Some(hash)) if hash == state.case.uploader => {
                Caller::Uploader { token_hash: hash }
            }
            (None, token_hash) => Caller::Visitor { token_hash },
        };
        if state.case.is_deleted()
            && !(N::RIGHT == Right::SeeHistory && allows(&caller, Right::SeeTombstone))
        {
            return Err(AppError::Gone);
        }
        if !allows(&caller, N::RIGHT) {
            return Err(refusal(&caller));
        }
        Ok(Self {
            state,
            caller,
            need: PhantomData,
        })
    }
}

/// The caller's own cases ("my cases"): the uploader cookie is the only key to the list, so a
/// browser lists the cases it sent and none other; without a cookie the list is empty. Holding a
/// case's link does not put it on one's list. Staff sessions play no part (the list is outside
/// `/admin`); deleted cases have lost their uploader and are never listed.
#[derive(Debug)]
pub struct OwnCases {
    /// sha256 (hex) of the caller's cookie token, when the browser has one.
    pub uploader_hash: Option<String>,
}

impl FromRequestParts<AppState> for OwnCases {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        let uploader = match Uploader::from_request_parts(parts, app).await {
            Ok(u) => u,
            Err(never) => match never {},
        };
        Ok(Self {
            uploader_hash: uploader.hash(),
        })
    }
}

/// A signed-in staff member with the right `N`, for the clinic's pages that are not about one
/// case (the list, the export, the agreement page, accounts). No session: the sign-in page (or
/// 401); a role without the right: 403.
#[derive(Debug)]
pub struct StaffAccess<N: Need> {
    /// The signed-in member, with the session's form token.
    pub staff: Staff,
    need: PhantomData<N>,
}

impl<N: Need> FromRequestParts<AppState> for StaffAccess<N> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, AppError> {
        let staff = Staff::from_request_parts(parts, app).await?;
        let caller = Caller::Staff(staff.member.clone());
        if !allows(&caller, N::RIGHT) {
            return Err(refusal(&caller));
        }
        Ok(Self {
            staff,
            need: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Right; 8] = [
        Right::SeeVerdict,
        Right::SeePhoto,
        Right::SeeHistory,
        Right::Delete,
        Right::Review,
        Right::SeeTombstone,
        Right::ListCases,
        Right::ManageAccounts,
    ];

    fn staff(role: Role) -> Caller {
        Caller::Staff(StaffMember {
            id: Uuid::new_v4(),
            username: "sam".to_owned(),
            role,
        })
    }

    #[test]
    fn a_reviewer_reads_and_reviews_but_neither_deletes_nor_manages_accounts() {
        let reviewer = staff(Role::Reviewer);
        for right in ALL {
            assert_eq!(
                allows(&reviewer, right),
                !matches!(right, Right::Delete | Right::ManageAccounts),
                "{right:?}"
            );
        }
        let admin = staff(Role::Admin);
        assert!(ALL.into_iter().all(|right| allows(&admin, right)));
    }

    #[test]
    fn uploaders_and_visitors_never_reach_the_clinics_pages() {
        let uploader = Caller::Uploader {
            token_hash: "a".repeat(64),
        };
        let visitor = Caller::Visitor { token_hash: None };
        for caller in [uploader, visitor] {
            for right in [
                Right::Review,
                Right::SeeTombstone,
                Right::ListCases,
                Right::ManageAccounts,
            ] {
                assert!(!allows(&caller, right), "{caller:?} {right:?}");
            }
        }
    }

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
