//! `mole`: the one binary — web service, workers, migrations and model tools as subcommands.

use clap::{Parser, Subcommand};

mod admin;
mod bench_admin;
mod bench_latency;
mod bench_model;
mod bench_streams;
mod client;
mod eval;
mod loadtest;
mod refusal;
mod service;

/// Skin-lesion triage service and tools. Without a command: the web server and a worker in one
/// process — with neither DATABASE_URL nor REDIS_URL set, on one SQLite file in MOLE_DATA_DIR
/// (./mole-data), nothing else to install.
#[derive(Debug, Parser)]
#[command(name = "mole", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    run: service::RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate a model card on labelled images: metrics.json, predictions.csv, report.html.
    Eval(eval::EvalArgs),
    /// Refusal rates of a model card: non-lesion pictures, degraded and clean lesion photos.
    Refusal(refusal::RefusalArgs),
    /// Run a web server of the scaled mode: upload page, live case pages, JSON API, /healthz,
    /// /metrics.
    Serve(mole_web::ServeArgs),
    /// Run a queue worker: batched inference on uploaded cases (run as many as you like).
    Worker(mole_worker::WorkerArgs),
    /// Staff accounts: add-user, reset-password, list-users.
    Admin(admin::AdminArgs),
    /// Apply the database migrations and exit.
    Migrate(service::MigrateArgs),
    /// Write every case, result, audit event, review and staff account to a case bundle.
    Export(service::ExportArgs),
    /// Read a case bundle into the database (e.g. the embedded file's cases into PostgreSQL).
    Import(service::ImportArgs),
    /// Measure upload → result latency of a running stack (POST, then the event stream).
    BenchLatency(bench_latency::BenchLatencyArgs),
    /// Seed many cases and measure the clinic's past-cases page of a running web process.
    BenchAdmin(bench_admin::BenchAdminArgs),
    /// Hold many live streams open on a running web process while uploads go on (memory, pool).
    BenchStreams(bench_streams::BenchStreamsArgs),
    /// Closed-loop load at saturation against mole or the reference Python app (throughput,
    /// latency percentiles, batch sizes, lost cases, peak memory).
    Loadtest(loadtest::LoadtestArgs),
    /// Measure model throughput and latency (tract, and onnxruntime with `--features ort`).
    BenchModel(bench_model::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return service::run(cli.run);
    };
    match command {
        Command::Export(args) => service::export(args),
        Command::Import(args) => service::import(args),
        Command::Eval(args) => eval::run(args),
        Command::Refusal(args) => refusal::run(args),
        Command::Serve(args) => service::serve(args),
        Command::Worker(args) => service::worker(args),
        Command::Migrate(args) => service::migrate(args),
        Command::Admin(args) => admin::run(args),
        Command::BenchLatency(args) => bench_latency::run(args),
        Command::BenchModel(args) => bench_model::run(args),
        Command::BenchStreams(args) => bench_streams::run(args),
        Command::BenchAdmin(args) => bench_admin::run(args),
        Command::Loadtest(args) => loadtest::run(args),
    }
}
