//! The service subcommands: `mole serve`, `mole worker`, `mole migrate`.

use std::io::IsTerminal;

use anyhow::Context;
use mole_storage::{Store, StoreOptions};

/// Settings of `mole migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
}

/// Logs as JSON lines (one object per event, with the span fields such as `request_id` and
/// `case_id`) unless a person watches a terminal. `RUST_LOG` filters (default `info`, with
/// PostgreSQL's notices such as "relation _sqlx_migrations already exists, skipping" at `warn`);
/// `MOLE_LOG_FORMAT=json|text` overrides the choice. Text has colours only on a terminal.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let terminal = std::io::stdout().is_terminal();
    let json = match std::env::var("MOLE_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !terminal,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `mole serve`.
pub fn serve(args: mole_web::ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    runtime()?.block_on(async {
        let shutdown = mole_jobs::shutdown_on_signals();
        mole_web::serve(args, shutdown).await
    })
}

/// `mole worker`.
pub fn worker(args: mole_worker::WorkerArgs) -> anyhow::Result<()> {
    init_tracing();
    runtime()?.block_on(async {
        let shutdown = mole_jobs::shutdown_on_signals();
        mole_worker::run(args, shutdown).await
    })
}

/// `mole migrate`: applies the migrations (Heroku's release phase).
pub fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    init_tracing();
    runtime()?.block_on(async {
        let store = Store::connect(&args.database_url, &StoreOptions::default())
            .await
            .context("connecting to PostgreSQL")?;
        store.migrate().await.context("applying migrations")?;
        let applied = mole_storage::MIGRATOR.iter().count();
        tracing::info!(migrations = applied, "database is up to date");
        store.close().await;
        Ok(())
    })
}
