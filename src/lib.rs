//! normiqa: train, evaluate and use no-reference image quality models on libtorch (tch).
pub use normiqa_core::{data, fr, metrics, synth, weights};

pub mod loss;
