//! The service subcommands: `mole` itself (the web server and a worker in one process: the
//! embedded mode, or a small scaled deployment), `mole serve`, `mole worker`, `mole migrate`,
//! `mole export` and `mole import`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use mole_runtime::{Backends, StoreArgs};

/// Settings of `mole migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Where the data lives.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Settings of `mole` without a subcommand: the web server's (flags or environment variables);
/// its worker's come from the environment (`MOLE_MAX_BATCH`, `MOLE_BACKEND`, … as for `mole
/// worker`).
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The web server.
    #[command(flatten)]
    pub serve: mole_web::ServeArgs,
}

/// The worker's settings read from the environment alone.
#[derive(Parser)]
struct WorkerFromEnv {
    #[command(flatten)]
    worker: mole_worker::WorkerArgs,
}

/// Settings of `mole export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Where the data lives.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The bundle to write (JSON Lines; `-` for standard output).
    #[arg(long, short)]
    pub out: PathBuf,
}

/// Settings of `mole import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Where the data goes.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The bundle to read (written by `mole export`; `-` for standard input).
    pub bundle: PathBuf,
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
        let shutdown = mole_runtime::shutdown_on_signals();
        mole_web::serve(args, shutdown).await
    })
}

/// `mole worker`.
pub fn worker(args: mole_worker::WorkerArgs) -> anyhow::Result<()> {
    init_tracing();
    runtime()?.block_on(async {
        let shutdown = mole_runtime::shutdown_on_signals();
        mole_worker::run(args, shutdown).await
    })
}

/// `mole`: the web server and a worker in one process, on the backends the environment names —
/// with neither `DATABASE_URL` nor `REDIS_URL`, the embedded mode: one SQLite file in
/// `MOLE_DATA_DIR` and a queue inside the process. Stops when either part stops.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    init_tracing();
    let mut worker = WorkerFromEnv::try_parse_from(["mole"])
        .context("reading the worker's settings from the environment")?
        .worker;
    worker.connection = args.serve.connection.clone();
    worker.model = args.serve.model.clone();
    worker.validate()?;
    args.serve.validate()?;
    runtime()?.block_on(async {
        let shutdown = mole_runtime::shutdown_on_signals();
        let backends = Backends::connect_as_server(&args.serve.connection).await?;
        let server =
            mole_web::Server::bind_with(args.serve, backends.clone(), shutdown.clone()).await?;
        let port = server.local_addr()?.port();
        match backends.database_file() {
            Some(file) => println!(
                "mole is running: open http://localhost:{port}/ (cases are kept in {}; stop \
                 with Ctrl-C)",
                file.display()
            ),
            None => println!(
                "mole is running: open http://localhost:{port}/ (on PostgreSQL and Redis; stop \
                 with Ctrl-C)"
            ),
        }
        let mut worker = tokio::spawn(mole_worker::run_with(
            worker,
            backends.clone(),
            shutdown.clone(),
        ));
        let mut web = tokio::spawn(server.run());
        // Either part stopping (a signal, an error, a dead inference thread) stops the other.
        let (web_result, worker_result) = tokio::select! {
            w = &mut web => {
                shutdown.cancel();
                (w, worker.await)
            }
            w = &mut worker => {
                shutdown.cancel();
                (web.await, w)
            }
        };
        backends.store.close().await;
        web_result.context("the web server panicked")??;
        worker_result.context("the worker panicked")??;
        Ok(())
    })
}

/// `mole migrate`: applies the migrations (Heroku's release phase; the embedded mode's file
/// when no `DATABASE_URL` is set).
pub fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    init_tracing();
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let applied = store.migrator().iter().count();
        tracing::info!(migrations = applied, data = %store.describe(), "database is up to date");
        store.close().await;
        Ok(())
    })
}

/// `mole export`: every case, result, audit event, review and staff account as a case bundle.
pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let cases = if args.out.as_os_str() == "-" {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            store.export_bundle(&mut out).await?
        } else {
            // Written next to its place and renamed when complete: never half a bundle.
            let partial = args.out.with_extension("partial");
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("creating {}", partial.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let n = store.export_bundle(&mut out).await?;
            out.into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()
                .context("writing the bundle")?;
            std::fs::rename(&partial, &args.out)
                .with_context(|| format!("writing {}", args.out.display()))?;
            n
        };
        eprintln!("exported {cases} cases from {}", store.describe());
        store.close().await;
        Ok(())
    })
}

/// `mole import`: writes a case bundle into the store (cases it holds already are skipped).
pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let store = args.store.open().await?;
        let counts = if args.bundle.as_os_str() == "-" {
            store
                .import_bundle(std::io::BufReader::new(std::io::stdin().lock()))
                .await?
        } else {
            let file = std::fs::File::open(&args.bundle)
                .with_context(|| format!("opening {}", args.bundle.display()))?;
            store.import_bundle(std::io::BufReader::new(file)).await?
        };
        eprintln!(
            "imported {} cases ({} events) and {} staff accounts into {}; {} cases were there \
             already",
            counts.cases,
            counts.events,
            counts.accounts,
            store.describe(),
            counts.skipped
        );
        store.close().await;
        Ok(())
    })
}
