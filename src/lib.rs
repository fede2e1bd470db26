//! The `tycho` command line. The model, SDK and operator are crates of their own:
//! [`tycho_model`], [`tycho_sdk`] and [`tycho_operator`]; the Kubernetes API emulator behind
//! `tycho dev` and `tycho sim` is `tycho_emulator`, compiled in with the `dev` feature (on by
//! default, off in the operator's image).
#![deny(missing_docs)]

pub mod cli;
