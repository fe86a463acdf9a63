//! Reports: figures (PNG) and tables (markdown, CSV) from run and experiment directories. The
//! report reads folders ([`results`]); it never imports the experiment runner that wrote them.
//! The MRKD tables and plots ([`mrkd`], [`mrkd_plots`]) render the results types of `distill`
//! (`crate::distill::results`) that the caller hands them; distill never imports the report.

pub mod font;
pub mod mrkd;
pub mod mrkd_plots;
pub mod per_type;
pub mod plots;
pub mod results;
pub mod stats;
pub mod tables;
pub mod tensorboard;
