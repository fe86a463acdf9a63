//! Pure-Rust half of normiqa: everything that does not need libtorch.
//!
//! Layers (each depends only on those above it):
//! - [`metrics`]: SROCC, PLCC, KROCC, RMSE, the least-squares mapping (k, b), paired t-test (f64).
//! - [`fr`]: full-reference image metrics (PSNR, SSIM, MS-SSIM, GMSD).
//! - [`data`]: datasets → samples, splits, parallel decode + resize cache, normalisation.
//! - [`synth`]: synthetic distortions (KADID-10k's 25 types) and dataset generation.
//! - [`weights`]: reader for PyTorch `.pth` state dicts (zip and legacy formats).
pub mod data;
pub mod fr;
pub mod metrics;
pub mod synth;
pub mod weights;
