//! Command-line interface. The command names and flags are a stable contract (see
//! DESIGN.md "CLI"): scripts depend on them.

mod alerts;
mod assemble;
mod backup;
mod config;
mod dead_letters;
mod demo;
mod detect;
mod export;
mod failures;
mod ingest;
mod inputs;
mod list_sources;
mod log;
mod migrate;
mod parse;
mod process;
mod prune;
mod report;
mod reprocess;
mod run;
mod source;
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
    /// Log lines on stderr as readable text, or one JSON object per line (for journald,
    /// Loki, Elasticsearch …).
    #[arg(long, value_enum, default_value = "text", global = true, env = "RUAFLOW_LOG_FORMAT")]
    pub log_format: LogFormat,
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
    /// The sending sources of each domain, most messages first, with the sender model's status.
    Sources(list_sources::SourcesArgs),
    /// Everything known about one address: its standing with each domain, enrichment,
    /// recent days and the alerts that named it.
    ///
    /// Exit status: 0 when the store knows the address, 1 when nothing in it names the
    /// address, 2 for what is not an address or a store that cannot be read.
    Source(source::SourceArgs),
    /// Rows of the store as CSV or JSON lines: records, aggregates, sources, reports, TLS, alerts.
    Export(export::ExportArgs),
    /// Every dead letter, with where it came from and why.
    DeadLetters(dead_letters::DeadLettersArgs),
    /// Read the dead letters' kept bytes through the pipeline again (after an upgrade or a fix).
    Reprocess(reprocess::ReprocessArgs),
    /// Delete what [retention] no longer keeps (SQLite or ClickHouse), once.
    Prune(prune::PruneArgs),
    /// Copy the SQLite store consistently, even while `run` writes to it.
    Backup(backup::BackupArgs),
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
        Command::Sources(args) => list_sources::run(args).map(|()| ExitCode::SUCCESS),
        Command::Source(args) => source::run(args),
        Command::Export(args) => export::run(args).map(|()| ExitCode::SUCCESS),
        Command::DeadLetters(args) => dead_letters::run(args).map(|()| ExitCode::SUCCESS),
        Command::Reprocess(args) => reprocess::run(args).map(|()| ExitCode::SUCCESS),
        Command::Prune(args) => prune::run(args).map(|()| ExitCode::SUCCESS),
        Command::Backup(args) => backup::run(args).map(|()| ExitCode::SUCCESS),
        Command::Failures(args) => failures::run(args).map(|()| ExitCode::SUCCESS),
        Command::Synth(args) => synth::run(args).map(|()| ExitCode::SUCCESS),
        Command::Migrate(args) => migrate::run(args).map(|()| ExitCode::SUCCESS),
        Command::Ingest(args) => ingest::run(args),
        Command::Process(args) => process::run(args).map(|()| ExitCode::SUCCESS),
        Command::Detect(args) => detect::run(args).map(|()| ExitCode::SUCCESS),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable text, fields first.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message` and the event's fields.
    Json,
}

/// Logs go to stderr, fields first; `RUST_LOG` overrides the level.
pub fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn,ruaflow=info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if format == LogFormat::Json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(|| log::SafeLines::json(std::io::stderr()))
            .with_target(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init();
        return;
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || log::SafeLines::new(std::io::stderr(), ansi))
        .with_target(false)
        .with_ansi(ansi)
        .compact()
        .init();
}
