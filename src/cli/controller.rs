//! `tycho controller`: run the operator.

use std::process::ExitCode;

use super::CliError;

/// Arguments of `tycho controller`.
#[derive(clap::Args, Debug)]
pub struct ControllerArgs {}

/// Run the operator until it is told to stop.
pub async fn run(_args: ControllerArgs) -> Result<ExitCode, CliError> {
    Err(CliError::Failed("tycho controller: being written".into()))
}
