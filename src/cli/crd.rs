//! `tycho crd`: print the CRD generated from the Rust type.

use std::process::ExitCode;

use super::CliError;

/// Print the System CRD as YAML.
pub fn run() -> Result<ExitCode, CliError> {
    let yaml = tycho_model::crd_yaml().map_err(CliError::serialize("the CRD"))?;
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
}
