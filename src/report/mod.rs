//! Reports: figures (PNG) and tables (markdown, CSV) from run and experiment directories. The
//! report reads folders ([`results`]); it never imports the experiment runner that wrote them.

pub mod font;
pub mod mrkd;
pub mod mrkd_plots;
pub mod per_type;
pub mod plots;
pub mod results;
pub mod stats;
pub mod tables;
pub mod tensorboard;
