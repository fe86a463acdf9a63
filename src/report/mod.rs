//! Reports: figures (PNG) and tables (markdown, CSV) from run and experiment directories.

pub mod font;
pub mod per_type;
pub mod plots;
pub mod tables;
pub mod tensorboard;
