//! Reports: plots and tables of results.

pub mod per_type;
