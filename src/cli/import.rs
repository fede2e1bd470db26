//! `tycho import FILE`: a Compose file's services as one System (or, with `--template`, a
//! SystemTemplate), printed as YAML.
//!
//! The translation is [`tycho_model::compose::import`]; this reads the file, takes the variables
//! from the environment over the `.env` beside the file (as Compose does), prints the YAML, and
//! prints what could not be mapped as `warning:` lines and what to know as `note:` lines on
//! standard error. `--strict` turns any warning into an error (exit code 2, nothing written).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::CliError;
use tycho_model::compose::{ImportOptions, ImportedObject, import, parse_env_file};

/// Arguments of `tycho import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The Compose file, e.g. `docker-compose.yml` (`-` for standard input).
    pub file: PathBuf,
    /// Make a SystemTemplate (a catalog entry) whose parameters are the file's `${VAR}`s, instead of a
    /// System whose variables are taken from the environment.
    #[arg(long)]
    pub template: bool,
    /// Name of the System or template (default: the file's `name`, else its directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Write the YAML to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Refuse the import (exit code 2) if anything could not be mapped.
    #[arg(long)]
    pub strict: bool,
    /// Include the services of this Compose profile (repeatable; as `docker compose --profile`).
    #[arg(
        long = "profile",
        value_name = "PROFILE",
        env = "COMPOSE_PROFILES",
        value_delimiter = ','
    )]
    pub profiles: Vec<String>,
}

/// Import the Compose file and write the YAML.
pub fn run(args: ImportArgs) -> Result<ExitCode, CliError> {
    let (label, text, dir) = read_input(&args.file)?;
    let mut env = match dir.as_deref().map(|d| d.join(".env")) {
        Some(path) if path.is_file() => {
            let text =
                std::fs::read_to_string(&path).map_err(CliError::io(path.display().to_string()))?;
            parse_env_file(&text)
        }
        _ => Default::default(),
    };
    // As Compose: the process environment wins over `.env` (variables that are no UTF-8 are skipped).
    env.extend(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
    );
    let fallback_name = dir
        .as_deref()
        .and_then(|d| d.canonicalize().ok())
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    let opts = ImportOptions {
        template: args.template,
        name: args.name.clone(),
        fallback_name,
        env,
        profiles: args.profiles.clone(),
        source: Some(label.clone()),
    };
    let imported = import(&text, &opts).map_err(CliError::input(label.clone()))?;
    {
        let mut stderr = std::io::stderr().lock();
        for n in &imported.notes {
            // Standard error is best effort: a closed one must not hide the result.
            let _ = writeln!(stderr, "note: {n}");
        }
        for w in &imported.warnings {
            let _ = writeln!(stderr, "warning: {w}");
        }
    }
    if args.strict && !imported.warnings.is_empty() {
        return Err(CliError::Usage(format!(
            "{label}: {} warning(s) with --strict: nothing written",
            imported.warnings.len()
        )));
    }
    let body = match &imported.object {
        ImportedObject::System(s) => serde_saphyr::to_string(s.as_ref()),
        ImportedObject::Template(t) => serde_saphyr::to_string(t.as_ref()),
    }
    .map_err(CliError::serialize("the imported object"))?;
    let yaml = format!("# Imported by `tycho import` from {label}.\n---\n{body}");
    match &args.output {
        Some(path) => {
            std::fs::write(path, yaml).map_err(CliError::io(path.display().to_string()))?
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(yaml.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(CliError::io("<stdout>"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The label (for messages), text and directory (for `.env` and the default name) of the input.
fn read_input(path: &Path) -> Result<(String, String, Option<PathBuf>), CliError> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(CliError::io("<stdin>"))?;
        return Ok(("<stdin>".into(), text, Some(PathBuf::from("."))));
    }
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(CliError::io(label.clone()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((label, text, Some(dir)))
}
