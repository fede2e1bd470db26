//! `tycho crd`: print the CRDs generated from the Rust types.

use std::process::ExitCode;

use super::CliError;

/// Which CRD to print.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdKind {
    /// `systems.tycho.dev` (crds/tycho.dev_systems.yaml).
    System,
    /// `systemtemplates.tycho.dev` (crds/tycho.dev_systemtemplates.yaml).
    Systemtemplate,
}

/// Arguments of `tycho crd`.
#[derive(clap::Args, Debug, Clone)]
pub struct CrdArgs {
    /// Print only this CRD (default: all of them, as one multi-document YAML stream).
    pub kind: Option<CrdKind>,
}

/// Print the CRDs as YAML.
pub fn run(args: CrdArgs) -> Result<ExitCode, CliError> {
    let system = || tycho_model::crd_yaml().map_err(CliError::serialize("the System CRD"));
    let template =
        || tycho_model::template_crd_yaml().map_err(CliError::serialize("the SystemTemplate CRD"));
    let yaml = match args.kind {
        Some(CrdKind::System) => system()?,
        Some(CrdKind::Systemtemplate) => template()?,
        None => format!("{}{}", system()?, template()?),
    };
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
}
