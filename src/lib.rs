//! normiqa: train, evaluate and use no-reference image quality models on libtorch (tch).
//!
//! The pure-Rust parts (metrics, full-reference metrics, datasets, synthetic distortions, the
//! `.pth` reader) live in the `normiqa-core` crate and are re-exported here. This crate adds what
//! needs libtorch: [`loss`], [`model`], [`train`], [`batch`], the HTTP scoring service
//! ([`serve`]) and the command line ([`cli`]).
pub use normiqa_core::{data, fr, metrics, synth, weights};

pub mod atomic;
pub mod batch;
pub mod cli;
pub mod distill;
pub mod experiment;
pub mod import;
pub mod inputs;
pub mod locate;
pub mod loss;
pub mod model;
pub mod output;
pub mod progress;
pub mod report;
pub mod serve;
pub mod run_folder;
pub mod train;
