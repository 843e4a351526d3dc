//! `egx-pipeline`: parses the command line, runs the pipeline, maps errors to exit codes.

mod app;
mod backfill;
mod cli;
mod logging;
mod ops;
mod settings;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match app::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("egx-pipeline: error: {e:#}");
            ExitCode::from(app::EXIT_USAGE)
        }
    }
}
