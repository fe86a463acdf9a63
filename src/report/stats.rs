//! Summary statistics of tables: one rule for every table (experiments, MRKD). The rule lives
//! with the metrics ([`crate::metrics::MeanStd`]), where the MRKD summary (`distill`) reads it
//! too.

pub use crate::metrics::MeanStd;
