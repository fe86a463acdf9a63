//! Experiments as files: a base training configuration plus sweeps, expanded into runs
//! ([`spec`]), run in order with skip/resume ([`runner`]; MRKD pairs: [`distill_runner`]; what both
//! share: [`common`]); their folders are read back for tables
//! and plots by [`crate::report::results`]. The command line is `normiqa run` (and `normiqa
//! report` for the figures).

pub mod common;
pub mod distill_runner;
pub mod runner;
pub mod spec;

pub use crate::report::results::{ResultRow, Results, RunData};
pub use runner::{run, RunOptions};
pub use spec::{Combo, Experiment};
