//! Blur family: KADID-10k types 1 (Gaussian blur), 2 (lens blur), 3 (motion blur).

use super::{conv2d, conv_sep, gauss_size, gaussian_1d, Planes};
use image::RgbImage;
use rand::Rng;

/// Type 1 levels: Gaussian sigma. From KADID `imdist_generator.m` (`case 1`).
pub const GAUSSIAN_BLUR_SIGMA: [f64; 5] = [0.1, 0.5, 1.0, 2.0, 5.0];
/// Type 2 levels: disk radius in pixels. From `imdist_generator.m` (`case 2`).
pub const LENS_BLUR_RADIUS: [f64; 5] = [1.0, 2.0, 4.0, 6.0, 8.0];
/// Type 3 levels: motion length in pixels. From `imdist_generator.m` (`case 3`).
pub const MOTION_BLUR_LENGTH: [f64; 5] = [1.0, 2.0, 4.0, 6.0, 10.0];

fn filter_all(img: &RgbImage, k: &[f32], kw: usize, kh: usize) -> RgbImage {
    let mut p = Planes::from_rgb(img);
    for c in p.c.iter_mut() {
        *c = conv2d(c, p.w, p.h, k, kw, kh);
    }
    p.to_rgb()
}

/// KADID `imblurgauss`: `imfilter(im, fspecial('gaussian', 2*ceil(2*sigma)+1, sigma), 'replicate')`
/// (algorithm as in the released code / ARNIQA port; applied separably).
pub fn gaussian_blur(img: &RgbImage, sigma: f64) -> RgbImage {
    let k = gaussian_1d(gauss_size(sigma), sigma);
    let mut p = Planes::from_rgb(img);
    for c in p.c.iter_mut() {
        *c = conv_sep(c, p.w, p.h, &k);
    }
    p.to_rgb()
}

/// KADID `imblurlens`: `imfilter(im, fspecial('disk', radius), 'replicate')`.
pub fn lens_blur(img: &RgbImage, radius: f64) -> RgbImage {
    let (k, n) = fspecial_disk(radius);
    filter_all(img, &k, n, n)
}

/// KADID `imblurmotion`: `imfilter(im, fspecial('motion', len, angle), 'replicate')` with a
/// random angle. The released code draws the angle at random; we draw it uniformly in
/// `[0, 180)` degrees from the seeded RNG (ARNIQA's port uses `randint(0, 180)`).
pub fn motion_blur(img: &RgbImage, length: f64, rng: &mut impl Rng) -> RgbImage {
    let angle = rng.gen::<f64>() * 180.0;
    let (k, kw, kh) = fspecial_motion(length, angle);
    filter_all(img, &k, kw, kh)
}

/// MATLAB `fspecial('disk', rad)`: anti-aliased pillbox (exact pixel/disk overlap areas),
/// size `2*ceil(rad-0.5)+1`, normalised to sum 1. The rarely-hit corner correction for
/// radii with `rad^2 < (crad-0.5)^2 + 0.25` (never for integer radii) is not reproduced.
pub(crate) fn fspecial_disk(rad: f64) -> (Vec<f32>, usize) {
    let crad = (rad - 0.5).ceil().max(0.0) as isize;
    let n = (2 * crad + 1) as usize;
    let r2 = rad * rad;
    let mut s = vec![0f64; n * n];
    for iy in -crad..=crad {
        for ix in -crad..=crad {
            let maxxy = ix.abs().max(iy.abs()) as f64;
            let minxy = ix.abs().min(iy.abs()) as f64;
            let m1 = if r2 < (maxxy + 0.5).powi(2) + (minxy - 0.5).powi(2) {
                minxy - 0.5
            } else {
                (r2 - (maxxy + 0.5).powi(2)).max(0.0).sqrt()
            };
            let m2 = if r2 > (maxxy - 0.5).powi(2) + (minxy + 0.5).powi(2) {
                minxy + 0.5
            } else {
                (r2 - (maxxy - 0.5).powi(2)).max(0.0).sqrt()
            };
            let edge = (r2 < (maxxy + 0.5).powi(2) + (minxy + 0.5).powi(2)
                && r2 > (maxxy - 0.5).powi(2) + (minxy - 0.5).powi(2))
                || (minxy == 0.0 && maxxy - 0.5 < rad && maxxy + 0.5 >= rad);
            let mut v = 0.0;
            if edge {
                let a2 = (m2 / rad).clamp(-1.0, 1.0).asin();
                let a1 = (m1 / rad).clamp(-1.0, 1.0).asin();
                v = r2 * (0.5 * (a2 - a1) + 0.25 * ((2.0 * a2).sin() - (2.0 * a1).sin()))
                    - (maxxy - 0.5) * (m2 - m1)
                    + (m1 - minxy + 0.5);
            }
            if (maxxy + 0.5).powi(2) + (minxy + 0.5).powi(2) < r2 {
                v += 1.0;
            }
            s[((iy + crad) as usize) * n + (ix + crad) as usize] = v;
        }
    }
    let c = (crad as usize) * n + crad as usize;
    s[c] = (std::f64::consts::PI * r2)
        .min(std::f64::consts::PI / 2.0)
        .min(1.0);
    let sum: f64 = s.iter().sum();
    (s.into_iter().map(|v| (v / sum) as f32).collect(), n)
}

/// MATLAB `fspecial('motion', len, theta)` (line of width 1, anti-aliased ends).
/// Returns `(kernel, width, height)`.
pub(crate) fn fspecial_motion(len: f64, theta: f64) -> (Vec<f32>, usize, usize) {
    let eps = f64::EPSILON;
    let len = len.max(1.0);
    let half = (len - 1.0) / 2.0;
    let phi = theta.rem_euclid(180.0) / 180.0 * std::f64::consts::PI;
    let (cosphi, sinphi) = (phi.cos(), phi.sin());
    let xsign: f64 = if cosphi > 0.0 {
        1.0
    } else if cosphi < 0.0 {
        -1.0
    } else {
        0.0
    };
    let linewdt = 1.0;
    let sx = (half * cosphi + linewdt * xsign - len * eps).trunc();
    let sy = (half * sinphi + linewdt - len * eps).trunc();
    // meshgrid(0:xsign:sx, 0:sy)
    let nx = if xsign == 0.0 {
        1
    } else {
        (sx / xsign).floor() as usize + 1
    };
    let ny = sy as usize + 1;
    let mut d = vec![0f64; nx * ny];
    for r in 0..ny {
        for c in 0..nx {
            let x = c as f64 * xsign;
            let y = r as f64;
            let mut dist = y * cosphi - x * sinphi;
            let rad = (x * x + y * y).sqrt();
            if rad >= half && dist.abs() <= linewdt {
                let x2lastpix = half - ((x + dist * sinphi) / cosphi).abs();
                dist = (dist * dist + x2lastpix * x2lastpix).sqrt();
            }
            d[r * nx + c] = (linewdt + eps - dist.abs()).max(0.0);
        }
    }
    // h = rot90(d, 2); h(end+(1:end)-1, end+(1:end)-1) = d;
    let (hh, hw) = (2 * ny - 1, 2 * nx - 1);
    let mut h = vec![0f64; hh * hw];
    for r in 0..ny {
        for c in 0..nx {
            h[r * hw + c] = d[(ny - 1 - r) * nx + (nx - 1 - c)];
        }
    }
    for r in 0..ny {
        for c in 0..nx {
            h[(ny - 1 + r) * hw + (nx - 1 + c)] = d[r * nx + c];
        }
    }
    let sum: f64 = h.iter().sum::<f64>() + eps * len * len;
    h.iter_mut().for_each(|v| *v /= sum);
    if cosphi > 0.0 {
        // flipud
        let mut f = vec![0f64; hh * hw];
        for r in 0..hh {
            f[r * hw..(r + 1) * hw].copy_from_slice(&h[(hh - 1 - r) * hw..(hh - r) * hw]);
        }
        h = f;
    }
    (h.into_iter().map(|v| v as f32).collect(), hw, hh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_matches_matlab_radius_1() {
        // MATLAB fspecial('disk',1):
        // 0.0251 0.1453 0.0251; 0.1453 0.3183 0.1453; 0.0251 0.1453 0.0251
        let (k, n) = fspecial_disk(1.0);
        assert_eq!(n, 3);
        let e = [
            0.0251, 0.1453, 0.0251, 0.1453, 0.3183, 0.1453, 0.0251, 0.1453, 0.0251,
        ];
        for (a, b) in k.iter().zip(e) {
            assert!((*a as f64 - b).abs() < 1e-3, "{k:?}");
        }
    }

    #[test]
    fn motion_horizontal() {
        // fspecial('motion', 5, 0) = [0.2 0.2 0.2 0.2 0.2]
        let (k, w, h) = fspecial_motion(5.0, 0.0);
        assert_eq!((w, h), (5, 1));
        for v in k {
            assert!((v - 0.2).abs() < 1e-6);
        }
        let (k, w, h) = fspecial_motion(10.0, 37.0);
        assert!(w % 2 == 1 && h % 2 == 1 && w > 1 && h > 1);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
