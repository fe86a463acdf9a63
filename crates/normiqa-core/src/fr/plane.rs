//! Grayscale `f64` planes, the luma conversion and the MATLAB-compatible
//! resampling helpers shared by the full-reference metrics.

use image::{GrayImage, RgbImage};
use rayon::prelude::*;

use super::FrError;

/// Coefficients of MATLAB's `rgb2gray` (R2015a and later hard-code them; they
/// are the first row of the inverse of the NTSC YIQ matrix, documented as
/// `0.2989 R + 0.5870 G + 0.1140 B`).
pub const RGB2GRAY_COEFFS: [f64; 3] = [0.298936021293775, 0.587043074451121, 0.114020904255103];

/// A single-channel image of `f64` samples, row-major (`data[y * width + x]`),
/// values nominally in `[0, 255]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f64>,
}

impl Plane {
    /// Wraps `data` (row-major, `width * height` samples).
    pub fn new(width: usize, height: usize, data: Vec<f64>) -> Result<Self, FrError> {
        if data.len() != width * height {
            return Err(FrError::PlaneLength {
                width,
                height,
                len: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Builds a plane from `f(x, y)`.
    pub fn from_fn(width: usize, height: usize, f: impl Fn(usize, usize) -> f64) -> Self {
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                data.push(f(x, y));
            }
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// 8-bit grayscale image as a plane (values 0..=255, no scaling).
    pub fn from_gray(img: &GrayImage) -> Self {
        let (w, h) = img.dimensions();
        Self {
            width: w as usize,
            height: h as usize,
            data: img.as_raw().iter().map(|&v| v as f64).collect(),
        }
    }

    /// Sample at column `x`, row `y`.
    #[inline]
    pub fn get(&self, x: usize, y: usize) -> f64 {
        self.data[y * self.width + x]
    }

    /// Row `y` as a slice.
    #[inline]
    pub fn row(&self, y: usize) -> &[f64] {
        &self.data[y * self.width..(y + 1) * self.width]
    }

    pub(crate) fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}

/// Luma as MATLAB's `rgb2gray` computes it on a `uint8` image:
/// `Y = round(0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B)`
/// (rounded half away from zero, so `Y` is an integer in `0..=255`).
///
/// This is what the authors' `ssim.m`, `msssim.m` and `GMSD.m` see when they are
/// used as recommended, on `rgb2gray(imread(...))`. All RGB entry points of
/// [`crate::fr`] use this luma; use [`rgb2gray_f64`] with the `*_plane`
/// functions for the unrounded variant.
pub fn rgb2gray(img: &RgbImage) -> Plane {
    let mut p = rgb2gray_f64(img);
    p.data.iter_mut().for_each(|v| *v = v.round());
    p
}

/// Unrounded luma `0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B`
/// (MATLAB's `rgb2gray` on a `double` image scaled to 0..255).
pub fn rgb2gray_f64(img: &RgbImage) -> Plane {
    let (w, h) = img.dimensions();
    let [cr, cg, cb] = RGB2GRAY_COEFFS;
    let data = img
        .pixels()
        .map(|p| cr * p[0] as f64 + cg * p[1] as f64 + cb * p[2] as f64)
        .collect();
    Plane {
        width: w as usize,
        height: h as usize,
        data,
    }
}

/// MATLAB 'symmetric' boundary: `... c b a | a b c ... x y z | z y x ...`.
#[inline]
fn reflect(mut i: isize, n: usize) -> usize {
    let n = n as isize;
    while i < 0 || i >= n {
        i = if i < 0 { -i - 1 } else { 2 * n - i - 1 };
    }
    i as usize
}

/// `imfilter(x, ones(f,f)/f^2, 'symmetric', 'same')` followed by
/// `x(1:f:end, 1:f:end)`, as in the authors' `ssim.m` (automatic downsampling)
/// and `msssim.m` (`f = 2` between scales).
///
/// MATLAB places the centre of an `f`-tap kernel at `floor((f+1)/2)` (1-based),
/// so for even `f` each kept sample averages the block starting at it (`f = 2`:
/// rows/cols `i, i+1`), and for odd `f` the block centred on it. The output is
/// `ceil(h/f) x ceil(w/f)`. `f <= 1` returns a copy.
pub fn box_downsample_symmetric(p: &Plane, f: usize) -> Plane {
    if f <= 1 {
        return p.clone();
    }
    let (w, h) = p.size();
    let (ow, oh) = (w.div_ceil(f), h.div_ceil(f));
    let centre = (f.div_ceil(2) - 1) as isize; // floor((f+1)/2) - 1, 0-based
    let taps = |o: usize, n: usize| -> Vec<usize> {
        (0..f)
            .map(|k| reflect((o * f) as isize + k as isize - centre, n))
            .collect()
    };
    let cols: Vec<Vec<usize>> = (0..ow).map(|ox| taps(ox, w)).collect();
    let scale = 1.0 / (f * f) as f64;
    let mut data = vec![0.0; ow * oh];
    data.par_chunks_mut(ow).enumerate().for_each(|(oy, out)| {
        let rows = taps(oy, h);
        for (ox, o) in out.iter_mut().enumerate() {
            let mut s = 0.0;
            for &ry in &rows {
                let r = p.row(ry);
                for &cx in &cols[ox] {
                    s += r[cx];
                }
            }
            *o = s * scale;
        }
    });
    Plane {
        width: ow,
        height: oh,
        data,
    }
}

/// `conv2(x, ones(2)/4, 'same')` followed by `x(1:2:end, 1:2:end)`, as in the
/// authors' `GMSD.m`. MATLAB's `'same'` keeps rows/cols `i, i+1` of a 2-tap
/// kernel's support for output `i` and pads with zeros, so for odd sizes the
/// last row/column averages the border pixels with zeros.
pub fn box_downsample2_zero(p: &Plane) -> Plane {
    let (w, h) = p.size();
    let (ow, oh) = (w.div_ceil(2), h.div_ceil(2));
    let mut data = vec![0.0; ow * oh];
    let at = |x: usize, y: usize| if x < w && y < h { p.get(x, y) } else { 0.0 };
    data.par_chunks_mut(ow).enumerate().for_each(|(oy, out)| {
        let y = 2 * oy;
        for (ox, o) in out.iter_mut().enumerate() {
            let x = 2 * ox;
            *o = (at(x, y) + at(x + 1, y) + at(x, y + 1) + at(x + 1, y + 1)) * 0.25;
        }
    });
    Plane {
        width: ow,
        height: oh,
        data,
    }
}

/// Errors unless both planes have the same size.
pub(crate) fn check_same_size(r: (usize, usize), d: (usize, usize)) -> Result<(), FrError> {
    if r != d {
        return Err(FrError::SizeMismatch {
            reference: r,
            distorted: d,
        });
    }
    Ok(())
}

pub(crate) fn rgb_size(img: &RgbImage) -> (usize, usize) {
    let (w, h) = img.dimensions();
    (w as usize, h as usize)
}

/// Sum of per-row partial sums in row order: deterministic whatever the
/// number of rayon threads.
pub(crate) fn ordered_sum(parts: &[f64]) -> f64 {
    parts.iter().sum()
}
