//! Experiments as files: a base training configuration plus sweeps, expanded into runs
//! ([`spec`]), run in order with skip/resume ([`runner`]), and read back for tables and plots
//! ([`results`]). The command line is `normiqa run` (and `normiqa report` for the figures).

pub mod results;
pub mod runner;
pub mod spec;

pub use results::{ResultRow, Results, RunData};
pub use runner::{run, RunOptions};
pub use spec::{Combo, Experiment};
