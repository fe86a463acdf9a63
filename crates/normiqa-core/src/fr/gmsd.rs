//! GMSD: W. Xue, L. Zhang, X. Mou, A. C. Bovik, "Gradient magnitude similarity
//! deviation: a highly efficient perceptual image quality index", IEEE TIP
//! 23(2):684-695, 2014, as the authors' `GMSD.m`.

use image::RgbImage;
use rayon::prelude::*;

use super::plane::{box_downsample2_zero, check_same_size, ordered_sum, rgb_size};
use super::{rgb2gray, too_small, FrError, Plane};

/// Stability constant `c = T = 170` for images in `[0, 255]`.
pub const GMSD_T: f64 = 170.0;

/// GMSD on the luma [`rgb2gray`]. Lower is better; identical images give `0.0`.
pub fn gmsd(reference: &RgbImage, distorted: &RgbImage) -> Result<f64, FrError> {
    check_same_size(rgb_size(reference), rgb_size(distorted))?;
    gmsd_plane(&rgb2gray(reference), &rgb2gray(distorted))
}

/// GMSD of two grayscale planes (values in 0..255):
///
/// 1. average 2x2 and subsample by 2 (`conv2(Y, ones(2)/4, 'same')`,
///    `Y(1:2:end, 1:2:end)`; zero padding, so odd sizes darken the last
///    row/column as in the code);
/// 2. Prewitt gradients `h_x = [1 0 -1; 1 0 -1; 1 0 -1] / 3`, `h_y = h_xᵀ`
///    (`conv2(.., 'same')`, zero padding), magnitude `m = sqrt((Y⊛h_x)² + (Y⊛h_y)²)`;
/// 3. gradient magnitude similarity `GMS = (2 m_r m_d + c) / (m_r² + m_d² + c)`,
///    `c` = [`GMSD_T`] = 170;
/// 4. `GMSD = std(GMS)`; the code's `std2` uses the `N - 1` normalisation
///    (the paper writes `1/N`: a factor `sqrt(N / (N - 1))` apart, N the
///    number of map samples).
///
/// Errors if sizes differ or a side is below 3 px (the map needs ≥ 2 samples).
pub fn gmsd_plane(reference: &Plane, distorted: &Plane) -> Result<f64, FrError> {
    check_same_size(reference.size(), distorted.size())?;
    too_small("GMSD", reference.size(), 3)?;
    let r = box_downsample2_zero(reference);
    let d = box_downsample2_zero(distorted);
    let (w, h) = r.size();

    // GMS map, one row per task.
    let map: Vec<Vec<f64>> = (0..h)
        .into_par_iter()
        .map(|y| {
            (0..w)
                .map(|x| {
                    let m1 = prewitt_magnitude(&r, x, y);
                    let m2 = prewitt_magnitude(&d, x, y);
                    (2.0 * m1 * m2 + GMSD_T) / (m1 * m1 + m2 * m2 + GMSD_T)
                })
                .collect()
        })
        .collect();

    let n = (w * h) as f64;
    let row_sums: Vec<f64> = map.iter().map(|row| row.iter().sum()).collect();
    let mean = ordered_sum(&row_sums) / n;
    let row_sq: Vec<f64> = map
        .iter()
        .map(|row| row.iter().map(|v| (v - mean) * (v - mean)).sum())
        .collect();
    Ok((ordered_sum(&row_sq) / (n - 1.0)).sqrt())
}

/// `sqrt(Ix² + Iy²)` of `conv2(Y, dx, 'same')`, `conv2(Y, dx', 'same')` at
/// (x, y), zero outside the plane. The sign convention of the convolution does
/// not matter for the magnitude.
#[inline]
fn prewitt_magnitude(p: &Plane, x: usize, y: usize) -> f64 {
    let at = |dx: isize, dy: isize| -> f64 {
        let (xx, yy) = (x as isize + dx, y as isize + dy);
        if xx < 0 || yy < 0 || xx >= p.width as isize || yy >= p.height as isize {
            0.0
        } else {
            p.get(xx as usize, yy as usize)
        }
    };
    let mut ix = 0.0;
    let mut iy = 0.0;
    for k in -1..=1 {
        ix += at(1, k) - at(-1, k);
        iy += at(k, 1) - at(k, -1);
    }
    let (ix, iy) = (ix / 3.0, iy / 3.0);
    (ix * ix + iy * iy).sqrt()
}
