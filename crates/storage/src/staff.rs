//! Clinic staff: accounts, their sessions, sign-in throttling and the staff's own append-only
//! trail (sign-ins, exports, account changes). Passwords arrive here already hashed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

use crate::{StorageError, Store, on_db};

/// What a staff account may do (mapped to rights by the web crate's access rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads cases and reviews them.
    Reviewer,
    /// A reviewer who also manages accounts and deletes cases.
    Admin,
}

impl Role {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reviewer => "reviewer",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reviewer" => Ok(Self::Reviewer),
            "admin" => Ok(Self::Admin),
            other => Err(StorageError::Corrupt(format!("unknown role {other:?}"))),
        }
    }
}

/// A staff account as stored.
#[derive(Debug, Clone)]
pub struct StaffAccount {
    /// Account id.
    pub id: Uuid,
    /// Lower-case user name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Sessions signed in under another epoch are refused.
    pub session_epoch: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last password change.
    pub password_changed_at: DateTime<Utc>,
    /// Last successful sign-in.
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// When disabled (a disabled account cannot sign in).
    pub disabled_at: Option<DateTime<Utc>>,
}

impl StaffAccount {
    /// The account as written in audit trails: `staff:<username>`.
    pub fn actor(&self) -> crate::Actor {
        crate::Actor::staff(&self.username)
    }
}

/// An account's row as stored (also what a case bundle carries: see [`crate::export`]).
#[derive(FromRow, serde::Serialize, serde::Deserialize)]
pub(crate) struct AccountRow {
    pub(crate) id: Uuid,
    pub(crate) username: String,
    pub(crate) role: String,
    pub(crate) password_hash: String,
    pub(crate) session_epoch: i32,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) password_changed_at: DateTime<Utc>,
    pub(crate) last_sign_in_at: Option<DateTime<Utc>>,
    pub(crate) disabled_at: Option<DateTime<Utc>>,
}

impl TryFrom<AccountRow> for StaffAccount {
    type Error = StorageError;

    fn try_from(r: AccountRow) -> Result<Self, StorageError> {
        Ok(Self {
            id: r.id,
            username: r.username,
            role: r.role.parse()?,
            password_hash: r.password_hash,
            session_epoch: r.session_epoch,
            created_at: r.created_at,
            password_changed_at: r.password_changed_at,
            last_sign_in_at: r.last_sign_in_at,
            disabled_at: r.disabled_at,
        })
    }
}

const ACCOUNT_COLUMNS: &str = "id, username, role, password_hash, session_epoch, created_at, \
    password_changed_at, last_sign_in_at, disabled_at";

/// Limits of sign-in attempts.
#[derive(Debug, Clone, Copy)]
pub struct SignInLimits {
    /// Wrong passwords in a row after which an account name is locked.
    pub per_account: i32,
    /// Failed sign-ins after which an address is locked.
    pub per_address: i32,
    /// How long a lock lasts after the last failure (and how long a count lasts).
    pub lockout: Duration,
}

/// Whether a sign-in attempt may check its password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInGate {
    /// Go ahead; the attempt is counted as a failure until [`Store::sign_in_succeeded`].
    Open,
    /// Too many failures: refused without checking the password.
    Refused {
        /// Seconds until the lock ends.
        retry_after_secs: u64,
    },
}

/// One entry of the staff's trail.
#[derive(Debug, Clone, Serialize)]
pub struct StaffEvent {
    /// Position.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`staff:<username>`, `cli`).
    pub actor: String,
    /// What, e.g. `signed_in`, `exported`, `account_created`.
    pub action: String,
    /// The request behind it.
    pub request_id: Option<String>,
    /// Facts (filters of an export, the account concerned...).
    pub detail: serde_json::Value,
}

#[derive(FromRow)]
struct StaffEventRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    request_id: Option<String>,
    detail: sqlx::types::Json<serde_json::Value>,
}

impl Store {
    /// Creates an account; `None` when the user name is taken.
    pub async fn create_account(
        &self,
        username: &str,
        role: Role,
        password_hash: &str,
    ) -> Result<Option<StaffAccount>, StorageError> {
        let row = on_db!(self, write, |pool, d| sqlx::query_as::<_, AccountRow>(
            d.sql_owned(&format!(
                "INSERT INTO staff_accounts (id, username, role, password_hash) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING RETURNING {ACCOUNT_COLUMNS}"
            ))
        )
        .bind(Uuid::new_v4())
        .bind(username)
        .bind(role.as_str())
        .bind(password_hash)
        .fetch_optional(pool)
        .await?);
        row.map(StaffAccount::try_from).transpose()
    }

    /// The account with this user name.
    pub async fn account_by_username(
        &self,
        username: &str,
    ) -> Result<Option<StaffAccount>, StorageError> {
        let row = on_db!(self, write, |pool, d| sqlx::query_as::<_, AccountRow>(
            d.sql_owned(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM staff_accounts WHERE username = $1"
            ))
        )
        .bind(username)
        .fetch_optional(pool)
        .await?);
        row.map(StaffAccount::try_from).transpose()
    }

    /// The account with this id.
    pub async fn account(&self, id: Uuid) -> Result<Option<StaffAccount>, StorageError> {
        let row = on_db!(self, write, |pool, d| sqlx::query_as::<_, AccountRow>(
            d.sql_owned(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM staff_accounts WHERE id = $1"
            ))
        )
        .bind(id)
        .fetch_optional(pool)
        .await?);
        row.map(StaffAccount::try_from).transpose()
    }

    /// Every account, by user name.
    pub async fn accounts(&self) -> Result<Vec<StaffAccount>, StorageError> {
        let rows = on_db!(self, write, |pool, d| sqlx::query_as::<_, AccountRow>(
            d.sql_owned(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM staff_accounts ORDER BY username"
            ))
        )
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(StaffAccount::try_from).collect()
    }

    /// Replaces an account's password hash, ends its sessions (new epoch) and lifts the lock on
    /// its name. `None` when there is no such account.
    pub async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<Option<StaffAccount>, StorageError> {
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            let row = sqlx::query_as::<_, AccountRow>(d.sql_owned(&format!(
                "UPDATE staff_accounts SET password_hash = $2, password_changed_at = {{now}}, \
             session_epoch = session_epoch + 1 WHERE username = $1 RETURNING {ACCOUNT_COLUMNS}"
            )))
            .bind(username)
            .bind(password_hash)
            .fetch_optional(&mut *tx)
            .await?;
            if row.is_some() {
                sqlx::query("DELETE FROM sign_in_throttle WHERE key = $1")
                    .bind(account_key(username))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            row.map(StaffAccount::try_from).transpose()
        })
    }

    /// Disables (ending its sessions) or enables an account; false when there is no such
    /// account or it already was so.
    pub async fn set_account_disabled(
        &self,
        id: Uuid,
        disabled: bool,
    ) -> Result<bool, StorageError> {
        let sql = if disabled {
            "UPDATE staff_accounts SET disabled_at = {now}, session_epoch = session_epoch + 1 \
             WHERE id = $1 AND disabled_at IS NULL"
        } else {
            "UPDATE staff_accounts SET disabled_at = NULL WHERE id = $1 AND disabled_at IS NOT NULL"
        };
        let n = on_db!(self, write, |pool, d| sqlx::query(d.sql(sql))
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n == 1)
    }

    /// Notes a successful sign-in.
    pub async fn note_sign_in(&self, id: Uuid) -> Result<(), StorageError> {
        on_db!(self, write, |pool, d| sqlx::query(d.sql(
            "UPDATE staff_accounts SET last_sign_in_at = {now} WHERE id = $1"
        ))
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Takes a sign-in attempt for `username` from `address`: refused when either has reached
    /// its limit within the lockout (the password must then not be checked), else counted as a
    /// failure until [`Store::sign_in_succeeded`] says otherwise. Counting before checking means
    /// concurrent guesses cannot slip past the limit.
    pub async fn reserve_sign_in(
        &self,
        username: &str,
        address: &str,
        limits: &SignInLimits,
    ) -> Result<SignInGate, StorageError> {
        let keys = [account_key(username), address_key(address)];
        on_db!(self, write, |pool, d| {
            let mut tx = pool.begin_with(d.begin_write()).await?;
            sqlx::query(
                "INSERT INTO sign_in_throttle (key) VALUES ($1), ($2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(&keys[0])
            .bind(&keys[1])
            .execute(&mut *tx)
            .await?;
            // Locked in key order: every attempt takes the same two locks the same way round.
            // Seconds left of the lockout: the one expression the two databases spell differently.
            let left = match d {
                crate::Dialect::Postgres => {
                    "EXTRACT(EPOCH FROM (last_failure_at + make_interval(secs => $3) - now()))::float8"
                }
                crate::Dialect::Sqlite => {
                    "(julianday(last_failure_at) - julianday('now')) * 86400.0 + $3"
                }
            };
            let rows: Vec<(String, i32, Option<f64>)> = sqlx::query_as(d.sql_owned(&format!(
                "SELECT key, \
             CASE WHEN last_failure_at > {{ago $3}} THEN failures ELSE 0 END, {left} \
             FROM sign_in_throttle WHERE key IN ($1, $2) ORDER BY key{{for_update}}"
            )))
            .bind(&keys[0])
            .bind(&keys[1])
            .bind(limits.lockout.as_secs_f64())
            .fetch_all(&mut *tx)
            .await?;
            let mut refused_for: Option<f64> = None;
            for (key, failures, left) in &rows {
                let limit = if key.starts_with("account:") {
                    limits.per_account
                } else {
                    limits.per_address
                };
                if *failures >= limit {
                    let left = left.unwrap_or(0.0).max(1.0);
                    refused_for = Some(refused_for.map_or(left, |r: f64| r.max(left)));
                }
            }
            if let Some(left) = refused_for {
                tx.commit().await?;
                return Ok(SignInGate::Refused {
                    retry_after_secs: left.ceil() as u64,
                });
            }
            sqlx::query(d.sql(
                "UPDATE sign_in_throttle SET failures = CASE \
                WHEN last_failure_at > {ago $3} THEN failures + 1 \
                ELSE 1 END, last_failure_at = {now} \
             WHERE key IN ($1, $2)",
            ))
            .bind(&keys[0])
            .bind(&keys[1])
            .bind(limits.lockout.as_secs_f64())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(SignInGate::Open)
        })
    }

    /// The attempt taken by [`Store::reserve_sign_in`] succeeded: the account's run of failures
    /// ends and the address's count loses that attempt.
    pub async fn sign_in_succeeded(
        &self,
        username: &str,
        address: &str,
    ) -> Result<(), StorageError> {
        on_db!(self, write, |pool, d| sqlx::query(
            "UPDATE sign_in_throttle SET failures = CASE WHEN key = $1 THEN 0 \
             WHEN failures > 0 THEN failures - 1 ELSE 0 END WHERE key IN ($1, $2)",
        )
        .bind(account_key(username))
        .bind(address_key(address))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Appends to the staff's trail.
    pub async fn staff_event(
        &self,
        actor: &str,
        action: &str,
        request_id: Option<&str>,
        detail: serde_json::Value,
    ) -> Result<(), StorageError> {
        on_db!(self, write, |pool, d| sqlx::query(
            "INSERT INTO staff_events (actor, action, request_id, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(actor)
        .bind(action)
        .bind(request_id)
        .bind(sqlx::types::Json(detail))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// The latest `limit` entries of the staff's trail, newest first.
    pub async fn staff_events(&self, limit: i64) -> Result<Vec<StaffEvent>, StorageError> {
        let rows = on_db!(self, read, |pool, d| sqlx::query_as::<_, StaffEventRow>(
            "SELECT id, at, actor, action, request_id, detail FROM staff_events \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|r| StaffEvent {
                id: r.id,
                at: r.at,
                actor: r.actor,
                action: r.action,
                request_id: r.request_id,
                detail: r.detail.0,
            })
            .collect())
    }

    /// Stores a new session record; false when the key is taken (the caller picks another id).
    pub async fn session_create(
        &self,
        id_hash: &str,
        data: &serde_json::Value,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let n = on_db!(self, write, |pool, d| sqlx::query(
            "INSERT INTO staff_sessions (id_hash, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id_hash) DO NOTHING",
        )
        .bind(id_hash)
        .bind(sqlx::types::Json(data))
        .bind(expires_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(n == 1)
    }

    /// Writes a session record.
    pub async fn session_save(
        &self,
        id_hash: &str,
        data: &serde_json::Value,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        on_db!(self, write, |pool, d| sqlx::query(
            "INSERT INTO staff_sessions (id_hash, data, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id_hash) DO UPDATE SET data = excluded.data, \
             expires_at = excluded.expires_at",
        )
        .bind(id_hash)
        .bind(sqlx::types::Json(data))
        .bind(expires_at)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// A session record that has not expired.
    pub async fn session_load(
        &self,
        id_hash: &str,
    ) -> Result<Option<(serde_json::Value, DateTime<Utc>)>, StorageError> {
        let row: Option<(sqlx::types::Json<serde_json::Value>, DateTime<Utc>)> =
            on_db!(self, write, |pool, d| {
                sqlx::query_as(d.sql(
            "SELECT data, expires_at FROM staff_sessions WHERE id_hash = $1 AND expires_at > {now}",
        ))
        .bind(id_hash)
        .fetch_optional(pool)
        .await?
            });
        Ok(row.map(|(data, at)| (data.0, at)))
    }

    /// Removes a session record.
    pub async fn session_delete(&self, id_hash: &str) -> Result<(), StorageError> {
        on_db!(self, write, |pool, d| sqlx::query(
            "DELETE FROM staff_sessions WHERE id_hash = $1"
        )
        .bind(id_hash)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Removes expired session records; returns how many.
    pub async fn delete_expired_sessions(&self) -> Result<u64, StorageError> {
        Ok(on_db!(self, write, |pool, d| sqlx::query(d.sql(
            "DELETE FROM staff_sessions WHERE expires_at <= {now}"
        ))
        .execute(pool)
        .await?
        .rows_affected()))
    }
}

fn account_key(username: &str) -> String {
    format!("account:{}", username.to_lowercase())
}

fn address_key(address: &str) -> String {
    format!("address:{address}")
}
