//! `tycho render -f FILE`: render Systems offline into multi-document YAML.

use std::path::PathBuf;
use std::process::ExitCode;

use super::CliError;

/// Arguments of `tycho render`.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// File with one or more System documents (`-` for standard input).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
}

/// Render the file's Systems.
pub fn run(_args: RenderArgs) -> Result<ExitCode, CliError> {
    Err(CliError::Failed("tycho render: being written".into()))
}
