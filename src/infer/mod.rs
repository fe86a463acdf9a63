//! Inference: a trained model loaded from its run folder ([`trained`]) or an ensemble of them
//! ([`ensemble`]), the checks at load ([`checks`]), test-time augmentation ([`tta`]), scoring that
//! survives a failing image ([`guarded`]) and the worker pool of `predict` and `serve`
//! ([`pool`]). It reads the run's description (`run/`) and the networks (`model/`), never the
//! trainer.

pub mod checks;
pub mod ensemble;
pub mod guarded;
pub mod pool;
pub mod trained;
pub mod tta;

pub use tta::{TestTime, Tta};
