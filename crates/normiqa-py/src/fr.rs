//! Full-reference metrics (`normiqa_core::fr`, as `normiqa fr`) and the 25 synthetic
//! distortions (`normiqa_core::synth`, as `normiqa synth`) on numpy HxWx3 uint8 arrays.

use normiqa_core::fr::{self, FrMetric, SsimMode};
use normiqa_core::synth::{self, Distortion};
use numpy::{PyArray3, PyReadonlyArray3};
use pyo3::prelude::*;

use crate::arrays::{from_rgb, to_rgb};
use crate::py_err;

/// `metric` ("psnr", "ssim", "ms-ssim", "gmsd") of `distorted` against `reference`; `ssim_mode`
/// "pyiqa" (default) or "matlab" for SSIM. GIL released while computing.
#[pyfunction]
#[pyo3(signature = (metric, reference, distorted, ssim_mode="pyiqa"))]
fn full_reference(
    py: Python<'_>,
    metric: &str,
    reference: PyReadonlyArray3<'_, u8>,
    distorted: PyReadonlyArray3<'_, u8>,
    ssim_mode: &str,
) -> PyResult<f64> {
    let which = FrMetric::ALL
        .iter()
        .copied()
        .find(|m| m.name() == metric.to_ascii_lowercase().replace('_', "-"))
        .ok_or_else(|| py_err(format!("unknown metric {metric:?} (expected psnr, ssim, ms-ssim or gmsd)")))?;
    let mode: SsimMode = ssim_mode.parse().map_err(py_err)?;
    let r = to_rgb(&reference, "reference")?;
    let d = to_rgb(&distorted, "distorted")?;
    py.detach(|| which.compute_with(&r, &d, &mode.options()))
        .map_err(|e: fr::FrError| py_err(format!("{}: {e}", which.name())))
}

/// `img` with distortion `name` (a KADID-10k name such as "jpeg" or an id "1".."25") at
/// `level` 1..=5; the random types draw from a generator seeded with `seed`.
#[pyfunction]
#[pyo3(signature = (img, name, level, seed=0))]
fn distort<'py>(
    py: Python<'py>,
    img: PyReadonlyArray3<'py, u8>,
    name: &str,
    level: u8,
    seed: u64,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let d: Distortion = name.parse().map_err(|e: synth::SynthError| py_err(e.to_string()))?;
    let src = to_rgb(&img, "img")?;
    let out = py
        .detach(|| synth::apply(d, &src, level, seed))
        .map_err(|e| py_err(e.to_string()))?;
    Ok(from_rgb(py, out))
}

/// The 25 distortion types in KADID-10k order: (id, name, family).
#[pyfunction]
fn distortions() -> Vec<(u8, &'static str, &'static str)> {
    Distortion::ALL.iter().map(|d| (d.id(), d.name(), d.family().name())).collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(full_reference, m)?)?;
    m.add_function(wrap_pyfunction!(distort, m)?)?;
    m.add_function(wrap_pyfunction!(distortions, m)?)?;
    Ok(())
}
