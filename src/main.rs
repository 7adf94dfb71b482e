//! ruaflow: DMARC aggregate and SMTP TLS report pipeline.
//!
//! The command-line front end. Each subcommand lives in `cli/`; the work is done by the
//! workspace crates (`ruaflow-schema`, `ruaflow-ingest`, `ruaflow-processor`).

#![forbid(unsafe_code)]

mod cli;
mod export;
mod range;
mod report;
mod synth;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose, args.log_format);
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
