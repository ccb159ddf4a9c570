//! `mole admin`: staff accounts from the command line (the first account is made this way).
//!
//! Passwords are never taken as arguments (they would sit in the shell's history and in `ps`):
//! either `--password-stdin` reads one line, or a strong one is generated and printed once.

use std::io::BufRead;

use anyhow::{Context, bail};
use mole_storage::{Role, Store};
use serde_json::json;

/// `mole admin`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Where the data lives: DATABASE_URL, else the embedded mode's MOLE_DATA_DIR.
    #[command(flatten)]
    pub store: mole_runtime::StoreArgs,

    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Add a staff account; prints a generated password unless --password-stdin.
    AddUser {
        /// User name (2–64 of a-z 0-9 . _ -).
        username: String,
        /// reviewer (reads and reviews cases) or admin (also accounts and deletion).
        #[arg(long, default_value = "reviewer")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (ends the account's sessions and lifts a sign-in lock); prints a
    /// generated password unless --password-stdin.
    ResetPassword {
        /// User name.
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the staff accounts.
    ListUsers,
}

/// A generated password: 24 characters of an unambiguous alphabet (~ 120 bits).
fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(29);
    let mut bytes = Vec::new();
    while bytes.len() < 48 {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    for b in bytes {
        if out.chars().filter(|c| *c != '-').count() == 24 {
            break;
        }
        if (b as usize) < limit {
            if !out.is_empty() && out.chars().filter(|c| *c != '-').count() % 6 == 0 {
                out.push('-');
            }
            out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
        }
    }
    out
}

fn password_from(stdin: bool) -> anyhow::Result<(String, bool)> {
    if !stdin {
        return Ok((generate_password(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if let Some(problem) = mole_web::auth::password_problem(&password) {
        bail!("{problem}");
    }
    Ok((password, false))
}

fn role_of(s: &str) -> anyhow::Result<Role> {
    match s {
        "reviewer" => Ok(Role::Reviewer),
        "admin" => Ok(Role::Admin),
        other => bail!("unknown role {other:?}: reviewer or admin"),
    }
}

/// Runs `mole admin …`.
pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = args.store.open().await?;
        let result = command(&store, args.command).await;
        store.close().await;
        result
    })
}

async fn command(store: &Store, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::AddUser {
            username,
            role,
            password_stdin,
        } => {
            let username = username.trim().to_lowercase();
            if let Some(problem) = mole_web::auth::username_problem(&username) {
                bail!("{problem}");
            }
            let role = role_of(&role)?;
            let (password, generated) = password_from(password_stdin)?;
            let hash = mole_web::auth::hash_password(&password)?;
            let Some(account) = store.create_account(&username, role, &hash).await? else {
                bail!(
                    "the user name {username:?} is taken (mole admin reset-password to change its password)"
                );
            };
            store
                .staff_event(
                    "cli",
                    "account_created",
                    None,
                    json!({ "username": account.username, "role": role.as_str() }),
                )
                .await?;
            println!("added {} ({})", account.username, account.role);
            if generated {
                println!("password: {password}");
                println!("(shown once; sign in at /admin/sign-in)");
            }
        }
        AdminCommand::ResetPassword {
            username,
            password_stdin,
        } => {
            let username = username.trim().to_lowercase();
            let (password, generated) = password_from(password_stdin)?;
            let hash = mole_web::auth::hash_password(&password)?;
            let Some(account) = store.set_password(&username, &hash).await? else {
                bail!("no account named {username:?} (mole admin list-users)");
            };
            store
                .staff_event(
                    "cli",
                    "password_reset",
                    None,
                    json!({ "username": account.username }),
                )
                .await?;
            println!(
                "new password set for {}; its sessions have ended",
                account.username
            );
            if generated {
                println!("password: {password}");
            }
        }
        AdminCommand::ListUsers => {
            let accounts = store.accounts().await?;
            println!(
                "{:<24} {:<9} {:<17} {:<17} state",
                "user", "role", "created", "last sign-in"
            );
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or_else(
                    || "never".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M").to_string(),
                )
            };
            for a in &accounts {
                println!(
                    "{:<24} {:<9} {:<17} {:<17} {}",
                    a.username,
                    a.role.as_str(),
                    time(Some(a.created_at)),
                    time(a.last_sign_in_at),
                    if a.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "active"
                    }
                );
            }
            if accounts.is_empty() {
                println!("(no accounts: mole admin add-user NAME --role admin)");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_grouped_and_different() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a, b);
        assert_eq!(a.chars().filter(|c| *c != '-').count(), 24, "{a}");
        assert_eq!(a.matches('-').count(), 3, "{a}");
        assert!(mole_web::auth::password_problem(&a).is_none());
    }
}
