//! `mole`: the one binary — web service, workers, migrations and model tools as subcommands.

use clap::{Parser, Subcommand};

mod bench_model;
mod eval;

/// Skin-lesion triage service and tools.
#[derive(Debug, Parser)]
#[command(name = "mole", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate a model card on labelled images: metrics.json, predictions.csv, report.html.
    Eval(eval::EvalArgs),
    /// Measure model throughput and latency (tract, and onnxruntime with `--features ort`).
    BenchModel(bench_model::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval(args) => eval::run(args),
        Command::BenchModel(args) => bench_model::run(args),
    }
}
