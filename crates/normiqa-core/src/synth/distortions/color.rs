//! Colour family: KADID-10k types 4 (colour diffusion), 5 (colour shift), 6 (colour
//! quantization), 7 (colour saturation in HSV), 8 (colour saturation in Lab).

use super::{
    conv_sep, gauss_size, gaussian_1d, hsv_to_rgb, lab_to_rgb, mapmm, rgb_to_hsv, rgb_to_lab,
    Planes,
};
use image::RgbImage;
use rand::Rng;

/// Type 4 levels: `amount` (blur sigma `1.5*amount+2`, chroma scaling `amount`). `imdist_generator.m` `case 4`.
pub const COLOR_DIFFUSION_AMOUNT: [f64; 5] = [1.0, 3.0, 6.0, 8.0, 12.0];
/// Type 5 levels: shift length in pixels. `imdist_generator.m` `case 5`.
pub const COLOR_SHIFT_AMOUNT: [f64; 5] = [1.0, 3.0, 6.0, 8.0, 12.0];
/// Type 6 levels: number of colours. `imdist_generator.m` `case 6`.
pub const COLOR_QUANTIZATION_COLORS: [usize; 5] = [64, 48, 32, 16, 8];
/// Type 7 levels: factor on HSV saturation. `imdist_generator.m` `case 7`.
pub const COLOR_SATURATION_HSV_FACTOR: [f64; 5] = [0.4, 0.2, 0.1, 0.0, -0.4];
/// Type 8 levels: factor on Lab a*, b*. `imdist_generator.m` `case 8`.
pub const COLOR_SATURATION_LAB_FACTOR: [f64; 5] = [1.0, 2.0, 3.0, 6.0, 9.0];

fn to_lab(p: &Planes) -> Planes {
    let mut q = p.clone();
    q.map_pixels(rgb_to_lab);
    q
}

fn from_lab(mut q: Planes) -> RgbImage {
    q.map_pixels(lab_to_rgb);
    q.to_rgb()
}

/// KADID `imcolordiffuse`: in Lab, blur a* and b* with a Gaussian of sigma `1.5*amount+2`
/// (size `2*ceil(2*sigma)+1`, replicate), multiply them by `amount`, keep L*. Algorithm as in
/// the released code (ARNIQA port `color_diffusion`).
pub fn color_diffusion(img: &RgbImage, amount: f64) -> RgbImage {
    let sigma = 1.5 * amount + 2.0;
    let k = gaussian_1d(gauss_size(sigma), sigma);
    let mut lab = to_lab(&Planes::from_rgb(img));
    let (w, h) = (lab.w, lab.h);
    for c in 1..3 {
        let mut b = conv_sep(&lab.c[c], w, h, &k);
        b.iter_mut().for_each(|v| *v *= amount as f32);
        lab.c[c] = b;
    }
    from_lab(lab)
}

/// KADID `imcolorshift`: the green channel is translated by a random vector of length
/// `amount` (direction `rand(1,2)` normalised, so both components >= 0, rounded) and blended
/// back with weight `e`, the Gaussian-smoothed (sigma 4) gradient magnitude of the grey image,
/// min-max normalised and clipped to its 1st..99th percentile. Follows the ARNIQA port of the
/// released code; the final re-normalisation of `e` to `[0, 1]` after clipping is our reading
/// (as in the other public Python port), so the strongest edges get the full shift.
pub fn color_shift(img: &RgbImage, amount: f64, rng: &mut impl Rng) -> RgbImage {
    let mut p = Planes::from_rgb(img);
    let (w, h) = (p.w, p.h);
    let gray: Vec<f32> = (0..w * h)
        .map(|i| 0.2989 * p.c[0][i] + 0.5870 * p.c[1][i] + 0.1140 * p.c[2][i])
        .collect();
    // central-difference gradient (one-sided at the borders), like MATLAB `gradient`.
    let mut e = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let gx = if w < 2 {
                0.0
            } else if x == 0 {
                gray[y * w + 1] - gray[y * w]
            } else if x == w - 1 {
                gray[y * w + x] - gray[y * w + x - 1]
            } else {
                (gray[y * w + x + 1] - gray[y * w + x - 1]) / 2.0
            };
            let gy = if h < 2 {
                0.0
            } else if y == 0 {
                gray[w + x] - gray[x]
            } else if y == h - 1 {
                gray[y * w + x] - gray[(y - 1) * w + x]
            } else {
                (gray[(y + 1) * w + x] - gray[(y - 1) * w + x]) / 2.0
            };
            e[y * w + x] = (gx * gx + gy * gy).sqrt();
        }
    }
    let k = gaussian_1d(gauss_size(4.0), 4.0);
    let mut e = conv_sep(&e, w, h, &k);
    mapmm(&mut e);
    let mut sorted = e.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let perc = |q: f64| {
        let i = ((sorted.len() as f64 * q / 100.0).round() as usize).clamp(1, sorted.len());
        sorted[i - 1]
    };
    let (lo, hi) = (perc(1.0), perc(99.0));
    e.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
    mapmm(&mut e);

    let (a0, a1): (f64, f64) = (rng.gen(), rng.gen());
    let n = (a0 * a0 + a1 * a1).sqrt().max(1e-12);
    let sy = (a0 / n * amount).round() as isize;
    let sx = (a1 / n * amount).round() as isize;
    let g = p.c[1].clone();
    for y in 0..h {
        let yy = (y as isize - sy).clamp(0, h as isize - 1) as usize;
        for x in 0..w {
            let xx = (x as isize - sx).clamp(0, w as isize - 1) as usize;
            let i = y * w + x;
            p.c[1][i] = g[yy * w + xx] * e[i] + g[i] * (1.0 - e[i]);
        }
    }
    p.to_rgb()
}

/// KADID `imcolorquantize`: MATLAB `rgb2ind(im, n, 'dither')`, i.e. a minimum-variance
/// colour palette of `n` colours followed by Floyd–Steinberg error diffusion. Our palette is
/// a greedy variance-based box split over a 5-bit-per-channel histogram (the method MATLAB
/// documents for `rgb2ind`'s minimum variance quantization), not MATLAB's exact code.
pub fn color_quantization(img: &RgbImage, ncolors: usize) -> RgbImage {
    let palette = min_variance_palette(img, ncolors);
    let mut p = Planes::from_rgb(img);
    let (w, h) = (p.w, p.h);
    let nearest = |c: [f32; 3]| {
        let mut best = 0;
        let mut bd = f32::INFINITY;
        for (i, q) in palette.iter().enumerate() {
            let d = (c[0] - q[0]).powi(2) + (c[1] - q[1]).powi(2) + (c[2] - q[2]).powi(2);
            if d < bd {
                bd = d;
                best = i;
            }
        }
        palette[best]
    };
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let old = [p.c[0][i], p.c[1][i], p.c[2][i]];
            let new = nearest(old);
            for k in 0..3 {
                p.c[k][i] = new[k];
                let err = old[k] - new[k];
                let mut add = |xx: isize, yy: usize, f: f32| {
                    if xx >= 0 && (xx as usize) < w && yy < h {
                        let j = yy * w + xx as usize;
                        p.c[k][j] = (p.c[k][j] + err * f).clamp(0.0, 1.0);
                    }
                };
                add(x as isize + 1, y, 7.0 / 16.0);
                add(x as isize - 1, y + 1, 3.0 / 16.0);
                add(x as isize, y + 1, 5.0 / 16.0);
                add(x as isize + 1, y + 1, 1.0 / 16.0);
            }
        }
    }
    p.to_rgb()
}

/// Greedy minimum-variance palette: repeatedly split the box with the largest summed squared
/// error, at the axis/position that minimises the two halves' total squared error.
fn min_variance_palette(img: &RgbImage, ncolors: usize) -> Vec<[f32; 3]> {
    // histogram over 5-bit colours: count and channel sums (in 0..255 units)
    let mut cnt = vec![0f64; 32768];
    let mut sum = vec![[0f64; 3]; 32768];
    let mut sq = vec![0f64; 32768];
    for p in img.pixels() {
        let [r, g, b] = p.0;
        let idx = ((r as usize >> 3) << 10) | ((g as usize >> 3) << 5) | (b as usize >> 3);
        cnt[idx] += 1.0;
        for k in 0..3 {
            sum[idx][k] += p.0[k] as f64;
        }
        sq[idx] += (r as f64).powi(2) + (g as f64).powi(2) + (b as f64).powi(2);
    }
    let bins: Vec<usize> = (0..32768).filter(|&i| cnt[i] > 0.0).collect();
    let sse = |set: &[usize]| {
        let (mut n, mut s, mut q) = (0.0, [0.0; 3], 0.0);
        for &i in set {
            n += cnt[i];
            q += sq[i];
            for k in 0..3 {
                s[k] += sum[i][k];
            }
        }
        if n == 0.0 {
            0.0
        } else {
            q - (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]) / n
        }
    };
    let coord = |i: usize, axis: usize| (i >> (10 - 5 * axis)) & 31;
    let mut boxes: Vec<(Vec<usize>, f64)> = vec![(bins.clone(), sse(&bins))];
    while boxes.len() < ncolors {
        let (bi, _) = match boxes
            .iter()
            .enumerate()
            .filter(|(_, b)| b.0.len() > 1)
            .max_by(|a, b| a.1 .1.partial_cmp(&b.1 .1).unwrap())
        {
            Some(x) => x,
            None => break,
        };
        let set = boxes[bi].0.clone();
        let mut best: Option<(f64, usize, usize)> = None; // (sse, axis, cut value)
        for axis in 0..3 {
            // per-coordinate accumulators along this axis
            let mut acc = vec![(0f64, [0f64; 3], 0f64); 32];
            for &i in &set {
                let a = &mut acc[coord(i, axis)];
                a.0 += cnt[i];
                a.2 += sq[i];
                for k in 0..3 {
                    a.1[k] += sum[i][k];
                }
            }
            let tot = acc.iter().fold((0.0, [0.0; 3], 0.0), |t, a| {
                (
                    t.0 + a.0,
                    [t.1[0] + a.1[0], t.1[1] + a.1[1], t.1[2] + a.1[2]],
                    t.2 + a.2,
                )
            });
            let mut left = (0.0, [0.0f64; 3], 0.0);
            for cut in 0..31 {
                let a = acc[cut];
                left = (
                    left.0 + a.0,
                    [left.1[0] + a.1[0], left.1[1] + a.1[1], left.1[2] + a.1[2]],
                    left.2 + a.2,
                );
                let rn = tot.0 - left.0;
                if left.0 == 0.0 || rn == 0.0 {
                    continue;
                }
                let rs = [
                    tot.1[0] - left.1[0],
                    tot.1[1] - left.1[1],
                    tot.1[2] - left.1[2],
                ];
                let e = left.2 - left.1.iter().map(|v| v * v).sum::<f64>() / left.0
                    + (tot.2 - left.2)
                    - rs.iter().map(|v| v * v).sum::<f64>() / rn;
                if best.map_or(true, |b| e < b.0) {
                    best = Some((e, axis, cut));
                }
            }
        }
        let Some((_, axis, cut)) = best else {
            // all colours in this box share one 5-bit cell: cannot split further
            boxes[bi].1 = -1.0;
            if boxes.iter().all(|b| b.1 < 0.0 || b.0.len() <= 1) {
                break;
            }
            continue;
        };
        let (l, r): (Vec<usize>, Vec<usize>) =
            set.into_iter().partition(|&i| coord(i, axis) <= cut);
        let (el, er) = (sse(&l), sse(&r));
        boxes[bi] = (l, el);
        boxes.push((r, er));
    }
    boxes
        .iter()
        .filter(|b| !b.0.is_empty())
        .map(|b| {
            let (mut n, mut s) = (0.0, [0.0; 3]);
            for &i in &b.0 {
                n += cnt[i];
                for k in 0..3 {
                    s[k] += sum[i][k];
                }
            }
            [
                (s[0] / n / 255.0) as f32,
                (s[1] / n / 255.0) as f32,
                (s[2] / n / 255.0) as f32,
            ]
        })
        .collect()
}

/// KADID `imcolorsaturate`: `hsv = rgb2hsv(im); hsv(:,:,2) *= factor; hsv2rgb` (released code / ARNIQA port).
pub fn color_saturation_hsv(img: &RgbImage, factor: f64) -> RgbImage {
    let mut p = Planes::from_rgb(img);
    p.map_pixels(|c| {
        let mut hsv = rgb_to_hsv(c);
        hsv[1] *= factor as f32;
        hsv_to_rgb(hsv)
    });
    p.to_rgb()
}

/// KADID `imsaturate`: `lab = rgb2lab(im); lab(:,:,2:3) *= factor; lab2rgb` (released code / ARNIQA port).
pub fn color_saturation_lab(img: &RgbImage, factor: f64) -> RgbImage {
    let mut lab = to_lab(&Planes::from_rgb(img));
    for c in 1..3 {
        lab.c[c].iter_mut().for_each(|v| *v *= factor as f32);
    }
    from_lab(lab)
}
