//! Command-line interface. The command names and flags are a stable contract (see
//! DESIGN.md "CLI"): scripts depend on them.

mod alerts;
mod assemble;
mod config;
mod demo;
mod detect;
mod failures;
mod ingest;
mod inputs;
mod log;
mod migrate;
mod parse;
mod process;
mod report;
mod run;
mod sources;
mod synth;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// DMARC aggregate and SMTP TLS report pipeline with DKIM replay flood detection.
#[derive(Debug, Parser)]
#[command(name = "ruaflow", version, about)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the pipeline find a DKIM replay flood in a month of synthetic reports.
    Demo(demo::DemoArgs),
    /// Parse report files and print what they hold.
    Parse(parse::ParseArgs),
    /// Run the embedded pipeline: inputs into a SQLite database.
    Run(run::RunArgs),
    /// Summary per domain, sources, TLS and alerts from a database (text, JSON or HTML).
    Report(report::ReportArgs),
    /// The stored alerts (one JSON object per line with --json).
    Alerts(alerts::AlertsArgs),
    /// The stored DMARC failure (forensic) reports, redacted (text, JSON lines or CSV).
    Failures(failures::FailuresArgs),
    /// Write a synthetic data set (realistic reports plus ground truth).
    Synth(synth::SynthArgs),
    /// Distributed: create or upgrade the ClickHouse tables.
    Migrate(migrate::MigrateArgs),
    /// Distributed: read reports from a source and publish them to Kafka.
    Ingest(ingest::IngestArgs),
    /// Distributed: consume reports from Kafka and store them in ClickHouse.
    Process(process::ProcessArgs),
    /// Distributed: detection and alerting on everything published to Kafka (run one).
    Detect(detect::DetectArgs),
}

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args).map(|()| ExitCode::SUCCESS),
        Command::Parse(args) => parse::run(args),
        Command::Run(args) => run::run(args).map(|_| ExitCode::SUCCESS),
        Command::Report(args) => report::run(args).map(|()| ExitCode::SUCCESS),
        Command::Alerts(args) => alerts::run(args).map(|()| ExitCode::SUCCESS),
        Command::Failures(args) => failures::run(args).map(|()| ExitCode::SUCCESS),
        Command::Synth(args) => synth::run(args).map(|()| ExitCode::SUCCESS),
        Command::Migrate(args) => migrate::run(args).map(|()| ExitCode::SUCCESS),
        Command::Ingest(args) => ingest::run(args),
        Command::Process(args) => process::run(args).map(|()| ExitCode::SUCCESS),
        Command::Detect(args) => detect::run(args).map(|()| ExitCode::SUCCESS),
    }
}

/// Logs go to stderr, fields first; `RUST_LOG` overrides the level.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,ruaflow=info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || log::SafeLines::new(std::io::stderr(), ansi))
        .with_target(false)
        .with_ansi(ansi)
        .compact()
        .init();
}
