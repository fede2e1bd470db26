//! `tycho crd`: print the CRD generated from the Rust type.

use std::process::ExitCode;

use super::CliError;

/// Print the System CRD as YAML.
pub fn run() -> Result<ExitCode, CliError> {
    let yaml = tycho_model::crd_yaml()
        .map_err(|e| CliError::Failed(format!("cannot serialize the CRD: {e}")))?;
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
}
