//! `egx-pipeline`: parses the command line, loads the configuration, starts the command
//! and maps its errors to exit codes. What each command does lives in its own module:
//! `pipeline` (run, produce, consume), `backfill`, `ops` (check-config, check, stored, lag).

mod backfill;
mod cli;
mod exit;
mod logging;
mod ops;
mod pipeline;
mod settings;
mod signals;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::settings::Settings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match start(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("egx-pipeline: error: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}

/// Loads the configuration and runs the command with it.
fn start(cli: &Cli) -> Result<ExitCode> {
    let settings = load_settings(cli)?;
    match &cli.command {
        Command::CheckConfig => ops::check_config(&settings),
        Command::Check => ops::finish(ops::check(&settings)),
        Command::Stored { prefix } => ops::finish(ops::stored(&settings, prefix.as_deref())),
        Command::Lag => ops::finish(ops::lag(&settings)),
        Command::Backfill(args) => backfill::run(settings, args),
        Command::Run(_) | Command::Produce(_) | Command::Consume(_) => pipeline::run(cli, settings),
    }
}

/// The configuration layers (see `settings`) with the command line on top, validated.
fn load_settings(cli: &Cli) -> Result<Settings> {
    let mut settings =
        Settings::load(cli.config.as_deref(), cli.command.defaults(), &|k| std::env::var(k).ok())?;
    cli.apply(&mut settings)?;
    settings.validate(&cli.origin())?;
    Ok(settings)
}
