//! The `tycho` binary: all wiring lives in [`tycho::cli`].

fn main() -> std::process::ExitCode {
    tycho::cli::main()
}
