//! Peak signal-to-noise ratio.

use image::RgbImage;

use super::plane::{check_same_size, ordered_sum, rgb_size};
use super::{rgb2gray, too_small, FrError, Plane};

/// PSNR over all three channels of 8-bit images:
/// `PSNR = 10 log10(255² / MSE)`, `MSE = (1 / 3WH) Σ (r - d)²`
/// (same as `skimage.metrics.peak_signal_noise_ratio(data_range=255)`).
///
/// Identical images have `MSE = 0` and give `f64::INFINITY`.
pub fn psnr(reference: &RgbImage, distorted: &RgbImage) -> Result<f64, FrError> {
    let size = rgb_size(reference);
    check_same_size(size, rgb_size(distorted))?;
    too_small("PSNR", size, 1)?;
    // Integer squared errors: exact, order-independent.
    let sse: u64 = reference
        .as_raw()
        .iter()
        .zip(distorted.as_raw())
        .map(|(&a, &b)| {
            let d = a as i64 - b as i64;
            (d * d) as u64
        })
        .sum();
    let mse = sse as f64 / reference.as_raw().len() as f64;
    Ok(10.0 * (255.0f64 * 255.0 / mse).log10())
}

/// PSNR on the luma [`rgb2gray`] (MATLAB `rgb2gray`, rounded to integers),
/// peak 255. Identical images give `f64::INFINITY`.
pub fn psnr_y(reference: &RgbImage, distorted: &RgbImage) -> Result<f64, FrError> {
    check_same_size(rgb_size(reference), rgb_size(distorted))?;
    psnr_plane(&rgb2gray(reference), &rgb2gray(distorted), 255.0)
}

/// PSNR of two planes with the given `peak` (255 for 8-bit data):
/// `10 log10(peak² / MSE)`; `f64::INFINITY` when they are equal.
pub fn psnr_plane(reference: &Plane, distorted: &Plane, peak: f64) -> Result<f64, FrError> {
    check_same_size(reference.size(), distorted.size())?;
    too_small("PSNR", reference.size(), 1)?;
    let rows: Vec<f64> = (0..reference.height)
        .map(|y| {
            reference
                .row(y)
                .iter()
                .zip(distorted.row(y))
                .map(|(a, b)| (a - b) * (a - b))
                .sum()
        })
        .collect();
    let mse = ordered_sum(&rows) / reference.data.len() as f64;
    Ok(10.0 * (peak * peak / mse).log10())
}
