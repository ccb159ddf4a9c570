//! `mole`: the one binary — web service, workers, migrations and model tools as subcommands.

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval(args) => eval::run(args),
    }
}
