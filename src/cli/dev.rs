//! `tycho dev` and `tycho sim`: an emulated cluster on this machine.

use std::process::ExitCode;

use super::CliError;

/// Arguments of `tycho dev`.
#[derive(clap::Args, Debug)]
pub struct DevArgs {}

/// Arguments of `tycho sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {}

/// Run `tycho dev`.
pub async fn run_dev(_args: DevArgs) -> Result<ExitCode, CliError> {
    Err(CliError::Failed("tycho dev: being written".into()))
}

/// Run `tycho sim`.
pub async fn run_sim(_args: SimArgs) -> Result<ExitCode, CliError> {
    Err(CliError::Failed("tycho sim: being written".into()))
}
