//! SSIM: Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
//! assessment: from error visibility to structural similarity", IEEE TIP
//! 13(4):600-612, 2004.
//!
//! Two variants ([`SsimMode`]), same window (11x11 Gaussian, σ = 1.5, 'valid') and constants:
//! - **pyiqa** (the default): `pyiqa.create_metric('ssim')` (pyiqa ≥ 0.1.5), which is what IQA
//!   papers and benchmarks now report for "SSIM": the luma is YIQ's Y, `round(0.299 R + 0.587 G
//!   + 0.114 B)` (computed in f32 on `x/255` and rounded half to even, as pyiqa does), no
//!   downsampling, and the contrast-structure term clipped at 0 (`relu(cs)`);
//! - **matlab**: the authors' `ssim.m` (2009): MATLAB `rgb2gray` luma, automatic downsampling by
//!   `max(1, round(min(H, W) / 256))`, no clipping. On large images the two differ by up to ~0.1
//!   (the downsampling averages away fine distortions such as noise).

use image::RgbImage;
use rayon::prelude::*;

use super::plane::{box_downsample_symmetric, check_same_size, ordered_sum, rgb_size};
use super::{rgb2gray, FrError, Plane};

/// Which SSIM (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SsimMode {
    /// pyiqa's `ssim`: YIQ luma, no downsampling, `relu(cs)`.
    #[default]
    Pyiqa,
    /// The authors' `ssim.m`: MATLAB `rgb2gray`, automatic downsampling.
    Matlab,
}

impl SsimMode {
    pub const ALL: [SsimMode; 2] = [SsimMode::Pyiqa, SsimMode::Matlab];

    pub fn name(&self) -> &'static str {
        match self {
            SsimMode::Pyiqa => "pyiqa",
            SsimMode::Matlab => "matlab",
        }
    }

    pub fn options(&self) -> SsimOptions {
        match self {
            SsimMode::Pyiqa => SsimOptions::pyiqa(),
            SsimMode::Matlab => SsimOptions::matlab(),
        }
    }
}

impl std::str::FromStr for SsimMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pyiqa" => Ok(SsimMode::Pyiqa),
            "matlab" | "ssim.m" => Ok(SsimMode::Matlab),
            _ => Err(format!(
                "unknown SSIM mode '{s}' (expected pyiqa or matlab)"
            )),
        }
    }
}

/// How RGB becomes the plane SSIM is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsimLuma {
    /// MATLAB `rgb2gray` on uint8 ([`rgb2gray`]).
    Matlab,
    /// pyiqa's `to_y_channel(.., 255, 'yiq')`: YIQ's Y in f32, rounded half to even.
    Yiq,
}

/// pyiqa's luma: `round(255 · (0.299 r + 0.587 g + 0.114 b))` with `r = R/255` etc. in f32.
pub fn rgb2y_yiq(img: &RgbImage) -> Plane {
    const W: [f32; 3] = [0.299, 0.587, 0.114];
    let data = img
        .pixels()
        .map(|p| {
            let c = |i: usize| p.0[i] as f32 / 255.0;
            let y = c(0) * W[0] + c(1) * W[1] + c(2) * W[2];
            (y * 255.0).round_ties_even() as f64
        })
        .collect();
    Plane::new(img.width() as usize, img.height() as usize, data).expect("sizes match")
}

/// Gaussian window size and standard deviation (`fspecial('gaussian', 11, 1.5)`).
pub(crate) const WIN: usize = 11;
pub(crate) const SIGMA: f64 = 1.5;
/// Stability constants `K1 = 0.01`, `K2 = 0.03` and dynamic range `L = 255`.
pub(crate) const K1: f64 = 0.01;
pub(crate) const K2: f64 = 0.03;
pub(crate) const L: f64 = 255.0;

/// Downsampling applied before SSIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SsimDownsample {
    /// The authors' recommended usage (`ssim.m`): `f = max(1, round(min(H, W) / 256))`,
    /// then an `f x f` average (`imfilter(.., 'symmetric', 'same')`) and subsampling by `f`.
    #[default]
    Auto,
    /// No downsampling: the original 2004 `ssim_index.m` (and skimage's
    /// `structural_similarity(gaussian_weights=True, sigma=1.5,
    /// use_sample_covariance=False)` averaged over the valid region).
    Off,
    /// A fixed factor, filtered as in `Auto` (`0` and `1` mean no downsampling).
    Factor(usize),
}

/// Options for [`ssim_with`] / [`ssim_plane`] (`luma` is used by [`ssim_with`] only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsimOptions {
    pub downsample: SsimDownsample,
    pub luma: SsimLuma,
    /// Clip the contrast-structure map at 0 (pyiqa's `relu(cs_map)`).
    pub clip_cs: bool,
}

impl Default for SsimOptions {
    /// [`SsimOptions::pyiqa`].
    fn default() -> Self {
        Self::pyiqa()
    }
}

impl SsimOptions {
    /// pyiqa's `ssim` (the default, [`SsimMode::Pyiqa`]).
    pub fn pyiqa() -> Self {
        Self {
            downsample: SsimDownsample::Off,
            luma: SsimLuma::Yiq,
            clip_cs: true,
        }
    }

    /// The authors' `ssim.m` with its automatic downsampling ([`SsimMode::Matlab`]).
    pub fn matlab() -> Self {
        Self {
            downsample: SsimDownsample::Auto,
            luma: SsimLuma::Matlab,
            clip_cs: false,
        }
    }

    /// Same as [`SsimOptions::matlab`].
    pub fn authors() -> Self {
        Self::matlab()
    }

    /// `ssim.m` without downsampling (`ssim_index.m`, 2004).
    pub fn no_downsampling() -> Self {
        Self {
            downsample: SsimDownsample::Off,
            ..Self::matlab()
        }
    }

    /// The factor used for an image of `width x height`.
    pub fn factor(&self, width: usize, height: usize) -> usize {
        match self.downsample {
            SsimDownsample::Auto => ((width.min(height) as f64 / 256.0).round() as usize).max(1),
            SsimDownsample::Off => 1,
            SsimDownsample::Factor(f) => f.max(1),
        }
    }
}

/// Mean SSIM (MSSIM) as pyiqa's `ssim` ([`SsimOptions::pyiqa`], the default). Identical images
/// give exactly `1.0`.
pub fn ssim(reference: &RgbImage, distorted: &RgbImage) -> Result<f64, FrError> {
    ssim_with(reference, distorted, &SsimOptions::default())
}

/// [`ssim`] with explicit options.
pub fn ssim_with(
    reference: &RgbImage,
    distorted: &RgbImage,
    options: &SsimOptions,
) -> Result<f64, FrError> {
    check_same_size(rgb_size(reference), rgb_size(distorted))?;
    let luma = match options.luma {
        SsimLuma::Matlab => rgb2gray,
        SsimLuma::Yiq => rgb2y_yiq,
    };
    ssim_plane(&luma(reference), &luma(distorted), options)
}

/// Mean SSIM of two grayscale planes (values in 0..255).
///
/// Per local window (11x11 Gaussian, σ = 1.5, normalised; 'valid' positions
/// only, i.e. `filter2(w, x, 'valid')`), with Gaussian-weighted statistics
/// μ, σ², σ_xy (paper Eqs. 14-16, computed as `E[x²] - μ²` like the code):
///
/// `SSIM = ((2 μx μy + C1)(2 σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2))`
/// (paper Eq. 13, i.e. α = β = γ = 1 and C3 = C2/2), `C1 = (K1 L)²`,
/// `C2 = (K2 L)²`, `K1 = 0.01`, `K2 = 0.03`, `L = 255`, and the result is the
/// mean over the map (MSSIM, Eq. 17).
///
/// Errors if sizes differ or if the (downsampled) image is smaller than the
/// 11x11 window: the input needs a shorter side of at least `10 f + 1`
/// (11 without downsampling).
pub fn ssim_plane(
    reference: &Plane,
    distorted: &Plane,
    options: &SsimOptions,
) -> Result<f64, FrError> {
    check_same_size(reference.size(), distorted.size())?;
    let (w, h) = reference.size();
    let f = options.factor(w, h);
    if w.div_ceil(f) < WIN || h.div_ceil(f) < WIN {
        return Err(FrError::TooSmall {
            metric: "SSIM",
            width: w,
            height: h,
            min_side: (WIN - 1) * f + 1,
        });
    }
    let (r, d) = if f > 1 {
        (
            box_downsample_symmetric(reference, f),
            box_downsample_symmetric(distorted, f),
        )
    } else {
        (reference.clone(), distorted.clone())
    };
    Ok(ssim_stats(&r, &d, options.clip_cs).mean_ssim)
}

/// Means of the SSIM map and of the contrast-structure map
/// `cs = (2 σxy + C2) / (σx² + σy² + C2)` (used by MS-SSIM).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SsimStats {
    pub mean_ssim: f64,
    pub mean_cs: f64,
}

/// `fspecial('gaussian', n, sigma)` is separable: the outer product of this
/// normalised 1-D kernel (no tap falls under MATLAB's `eps * max` cut for
/// n = 11, σ = 1.5).
pub(crate) fn gaussian_1d(n: usize, sigma: f64) -> Vec<f64> {
    let c = (n as f64 - 1.0) / 2.0;
    let g: Vec<f64> = (0..n)
        .map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = g.iter().sum();
    g.into_iter().map(|v| v / s).collect()
}

/// Single-scale SSIM statistics of two equally sized planes of at least
/// 11x11 (`ssim_index_new` in `msssim.m`; the body of `ssim.m`); `clip_cs` clips the
/// contrast-structure term at 0 (pyiqa).
pub(crate) fn ssim_stats(a: &Plane, b: &Plane, clip_cs: bool) -> SsimStats {
    let g = gaussian_1d(WIN, SIGMA);
    let (w, h) = a.size();
    debug_assert!(w >= WIN && h >= WIN && a.size() == b.size());
    let (ow, oh) = (w - WIN + 1, h - WIN + 1);
    let c1 = (K1 * L) * (K1 * L);
    let c2 = (K2 * L) * (K2 * L);

    // Horizontal pass of the five moments x, y, x², y², xy ('valid' columns).
    let mut hz = vec![[0.0f64; 5]; h * ow];
    hz.par_chunks_mut(ow).enumerate().for_each(|(y, out)| {
        let (ra, rb) = (a.row(y), b.row(y));
        for (x, o) in out.iter_mut().enumerate() {
            let mut s = [0.0f64; 5];
            for (k, &gk) in g.iter().enumerate() {
                let (p, q) = (ra[x + k], rb[x + k]);
                s[0] += gk * p;
                s[1] += gk * q;
                s[2] += gk * (p * p);
                s[3] += gk * (q * q);
                s[4] += gk * (p * q);
            }
            *o = s;
        }
    });

    // Vertical pass ('valid' rows) fused with the SSIM / cs maps; one partial
    // sum per output row, summed in row order.
    let parts: Vec<(f64, f64)> = (0..oh)
        .into_par_iter()
        .map(|y| {
            let mut acc = vec![[0.0f64; 5]; ow];
            for (k, &gk) in g.iter().enumerate() {
                let src = &hz[(y + k) * ow..(y + k + 1) * ow];
                for (a, s) in acc.iter_mut().zip(src) {
                    for i in 0..5 {
                        a[i] += gk * s[i];
                    }
                }
            }
            let (mut ssim_sum, mut cs_sum) = (0.0, 0.0);
            for m in &acc {
                let (mu1, mu2) = (m[0], m[1]);
                let (mu1_sq, mu2_sq, mu1_mu2) = (mu1 * mu1, mu2 * mu2, mu1 * mu2);
                let s1 = m[2] - mu1_sq;
                let s2 = m[3] - mu2_sq;
                let s12 = m[4] - mu1_mu2;
                let cs_num = 2.0 * s12 + c2;
                let cs_den = s1 + s2 + c2;
                if clip_cs {
                    let cs = (cs_num / cs_den).max(0.0);
                    ssim_sum += (2.0 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1) * cs;
                    cs_sum += cs;
                } else {
                    ssim_sum +=
                        ((2.0 * mu1_mu2 + c1) * cs_num) / ((mu1_sq + mu2_sq + c1) * cs_den);
                    cs_sum += cs_num / cs_den;
                }
            }
            (ssim_sum, cs_sum)
        })
        .collect();
    let n = (ow * oh) as f64;
    let ssim_rows: Vec<f64> = parts.iter().map(|p| p.0).collect();
    let cs_rows: Vec<f64> = parts.iter().map(|p| p.1).collect();
    SsimStats {
        mean_ssim: ordered_sum(&ssim_rows) / n,
        mean_cs: ordered_sum(&cs_rows) / n,
    }
}
