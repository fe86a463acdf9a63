//! Full-reference image quality metrics: PSNR, SSIM, MS-SSIM and GMSD,
//! transcribed from the authors' reference code, in `f64`.
//!
//! | metric | reference | better |
//! |---|---|---|
//! | [`psnr`], [`psnr_y`] | `10 log10(255² / MSE)` | higher |
//! | [`ssim`] | Wang, Bovik, Sheikh, Simoncelli, *IEEE TIP* 13(4), 2004; pyiqa `ssim` (default) or `ssim.m` ([`SsimMode`]) | higher |
//! | [`ms_ssim`] | Wang, Simoncelli, Bovik, *Asilomar* 2003; `msssim.m` | higher |
//! | [`gmsd`] | Xue, Zhang, Mou, Bovik, *IEEE TIP* 23(2), 2014; `GMSD.m` | lower |
//!
//! The RGB entry points convert both images to luma with [`rgb2gray`]
//! (MATLAB's `rgb2gray` on `uint8`, i.e. rounded to integers) except [`psnr`],
//! which uses all three channels, and the default SSIM, which uses pyiqa's
//! rounded YIQ luma ([`rgb2y_yiq`]). Every metric also has a `*_plane` variant on
//! grayscale [`Plane`]s (any luma, values in 0..255).
//!
//! Parallel loops (rayon) run over rows and reduce per-row partial results in
//! row order, so results are bit-identical whatever the thread count.

mod gmsd;
mod ms_ssim;
mod plane;
mod psnr;
mod ssim;

use std::fmt;
use std::str::FromStr;

use image::RgbImage;

pub use gmsd::{gmsd, gmsd_plane, GMSD_T};
pub use ms_ssim::{ms_ssim, ms_ssim_plane, MS_SSIM_MIN_SIDE, MS_SSIM_WEIGHTS};
pub use plane::{
    box_downsample2_zero, box_downsample_symmetric, rgb2gray, rgb2gray_f64, Plane, RGB2GRAY_COEFFS,
};
pub use psnr::{psnr, psnr_plane, psnr_y};
pub use ssim::{
    rgb2y_yiq, ssim, ssim_plane, ssim_with, SsimDownsample, SsimLuma, SsimMode, SsimOptions,
};

/// Errors of the full-reference metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrError {
    /// Reference and distorted images differ in size (`(width, height)` each).
    #[error(
        "size mismatch: reference is {}x{}, distorted is {}x{}",
        reference.0, reference.1, distorted.0, distorted.1
    )]
    SizeMismatch {
        reference: (usize, usize),
        distorted: (usize, usize),
    },
    /// The image is too small for the metric's window / number of scales.
    #[error("{metric} needs images of at least {min_side}x{min_side} px, got {width}x{height}")]
    TooSmall {
        metric: &'static str,
        width: usize,
        height: usize,
        min_side: usize,
    },
    /// `Plane::new` got a buffer of the wrong length.
    #[error("plane of {width}x{height} needs {} samples, got {len}", width * height)]
    PlaneLength {
        width: usize,
        height: usize,
        len: usize,
    },
    /// `FrMetric::from_str` got an unknown name.
    #[error("unknown full-reference metric '{0}' (expected psnr, ssim, ms-ssim or gmsd)")]
    UnknownMetric(String),
}

pub(crate) fn too_small(
    metric: &'static str,
    size: (usize, usize),
    min_side: usize,
) -> Result<(), FrError> {
    if size.0 < min_side || size.1 < min_side {
        return Err(FrError::TooSmall {
            metric,
            width: size.0,
            height: size.1,
            min_side,
        });
    }
    Ok(())
}

/// Selector over the full-reference metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrMetric {
    Psnr,
    Ssim,
    MsSsim,
    Gmsd,
}

impl FrMetric {
    pub const ALL: [FrMetric; 4] = [
        FrMetric::Psnr,
        FrMetric::Ssim,
        FrMetric::MsSsim,
        FrMetric::Gmsd,
    ];

    /// Canonical name: `psnr`, `ssim`, `ms-ssim`, `gmsd`.
    pub fn name(&self) -> &'static str {
        match self {
            FrMetric::Psnr => "psnr",
            FrMetric::Ssim => "ssim",
            FrMetric::MsSsim => "ms-ssim",
            FrMetric::Gmsd => "gmsd",
        }
    }

    /// `false` only for GMSD (a distortion measure, 0 for identical images).
    pub fn higher_is_better(&self) -> bool {
        !matches!(self, FrMetric::Gmsd)
    }

    /// Computes the metric with its defaults: [`psnr`] (RGB), [`ssim`]
    /// (pyiqa's), [`ms_ssim`], [`gmsd`].
    pub fn compute(&self, reference: &RgbImage, distorted: &RgbImage) -> Result<f64, FrError> {
        self.compute_with(reference, distorted, &SsimOptions::default())
    }

    /// [`FrMetric::compute`] with the SSIM variant given (other metrics ignore it).
    pub fn compute_with(
        &self,
        reference: &RgbImage,
        distorted: &RgbImage,
        ssim_options: &SsimOptions,
    ) -> Result<f64, FrError> {
        match self {
            FrMetric::Psnr => psnr(reference, distorted),
            FrMetric::Ssim => ssim_with(reference, distorted, ssim_options),
            FrMetric::MsSsim => ms_ssim(reference, distorted),
            FrMetric::Gmsd => gmsd(reference, distorted),
        }
    }

    /// Same on grayscale planes (PSNR with peak 255).
    pub fn compute_plane(&self, reference: &Plane, distorted: &Plane) -> Result<f64, FrError> {
        match self {
            FrMetric::Psnr => psnr_plane(reference, distorted, 255.0),
            FrMetric::Ssim => ssim_plane(reference, distorted, &SsimOptions::default()),
            FrMetric::MsSsim => ms_ssim_plane(reference, distorted),
            FrMetric::Gmsd => gmsd_plane(reference, distorted),
        }
    }
}

impl fmt::Display for FrMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FrMetric {
    type Err = FrError;

    /// Case-insensitive; `ms_ssim` and `msssim` are accepted for `ms-ssim`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "psnr" => Ok(FrMetric::Psnr),
            "ssim" => Ok(FrMetric::Ssim),
            "ms-ssim" | "ms_ssim" | "msssim" => Ok(FrMetric::MsSsim),
            "gmsd" => Ok(FrMetric::Gmsd),
            _ => Err(FrError::UnknownMetric(s.to_string())),
        }
    }
}
