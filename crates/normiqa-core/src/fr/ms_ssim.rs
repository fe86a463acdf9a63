//! MS-SSIM: Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multi-scale structural
//! similarity for image quality assessment", 37th Asilomar Conference on
//! Signals, Systems and Computers, 2003, as the authors' `msssim.m`.

use image::RgbImage;

use super::plane::{box_downsample_symmetric, check_same_size, rgb_size};
use super::ssim::{ssim_stats, WIN};
use super::{rgb2gray, too_small, FrError, Plane};

/// Exponents β_j = γ_j of scales 1..5 (α_5 = β_5 = γ_5 for the last), from the
/// paper's calibration experiment.
pub const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

/// Shortest side accepted: `msssim.m` requires `min(H, W) / 2^(5-1) >= 11`
/// (the window size), i.e. 176 px.
pub const MS_SSIM_MIN_SIDE: usize = WIN << (MS_SSIM_WEIGHTS.len() - 1);

/// MS-SSIM on the luma [`rgb2gray`]. Identical images give `1.0`.
pub fn ms_ssim(reference: &RgbImage, distorted: &RgbImage) -> Result<f64, FrError> {
    check_same_size(rgb_size(reference), rgb_size(distorted))?;
    ms_ssim_plane(&rgb2gray(reference), &rgb2gray(distorted))
}

/// MS-SSIM of two grayscale planes (values in 0..255), paper Eq. 7:
///
/// `MS-SSIM = [l_5]^α_5 · Π_{j=1..5} [c_j]^β_j [s_j]^γ_j`
///
/// computed as the code does: at scales 1-4 the mean of the
/// contrast-structure map `cs = (2 σxy + C2) / (σx² + σy² + C2)` (C3 = C2/2),
/// at scale 5 the mean of the full SSIM map, each raised to
/// [`MS_SSIM_WEIGHTS`] and multiplied (`'product'` method). Each scale is the
/// single-scale SSIM machinery (11x11 Gaussian σ = 1.5, K = [0.01, 0.03],
/// L = 255, 'valid'); between scales both images are averaged 2x2
/// (`imfilter(.., ones(2)/4, 'symmetric', 'same')`) and subsampled by 2
/// (`(1:2:end, 1:2:end)`, so odd sizes round up). No automatic downsampling.
///
/// Errors if sizes differ or the shorter side is below [`MS_SSIM_MIN_SIDE`]
/// (176), the authors' check (where `msssim.m` returns `-Inf`). A negative
/// mean cs at some scale (strongly anti-correlated images) makes the
/// fractional power undefined: the result is then `NaN` (MATLAB would return
/// a complex number).
pub fn ms_ssim_plane(reference: &Plane, distorted: &Plane) -> Result<f64, FrError> {
    check_same_size(reference.size(), distorted.size())?;
    too_small("MS-SSIM", reference.size(), MS_SSIM_MIN_SIDE)?;
    let levels = MS_SSIM_WEIGHTS.len();
    let mut a = reference.clone();
    let mut b = distorted.clone();
    let mut result = 1.0;
    for (l, &w) in MS_SSIM_WEIGHTS.iter().enumerate() {
        let stats = ssim_stats(&a, &b, false);
        if l + 1 < levels {
            result *= stats.mean_cs.powf(w);
            a = box_downsample_symmetric(&a, 2);
            b = box_downsample_symmetric(&b, 2);
        } else {
            result *= stats.mean_ssim.powf(w);
        }
    }
    Ok(result)
}
