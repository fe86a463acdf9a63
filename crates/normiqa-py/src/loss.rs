//! The Rust Norm-in-Norm loss (src/loss.rs, the one `normiqa train` minimises) on plain numbers:
//! its value and its gradient with respect to the predictions, in f64 through libtorch's
//! autograd. `normiqa.torch.norm_in_norm_loss` (PyTorch) is tested against it.

use normiqa::loss::{LossConfig, LossKind};
use pyo3::prelude::*;
use tch::{Kind, Tensor};

use crate::py_err;

/// (loss, d loss / d pred) of Norm-in-Norm with `p`, `q`, `alpha` (and `detach`: the
/// prediction statistics without gradient), as the trainer computes it.
#[pyfunction]
#[pyo3(signature = (pred, mos, p=1.0, q=2.0, alpha=(1.0, 0.0), detach=false))]
fn norm_in_norm_reference(
    py: Python<'_>,
    pred: Vec<f64>,
    mos: Vec<f64>,
    p: f64,
    q: f64,
    alpha: (f64, f64),
    detach: bool,
) -> PyResult<(f64, Vec<f64>)> {
    let kind = LossKind::NormInNorm { p, q, alpha: [alpha.0, alpha.1] };
    kind.validate().map_err(|e| py_err(e.to_string()))?;
    let cfg = LossConfig { kind, detach, monotonicity: None };
    // Without the GIL: where the full torch is imported, libtorch's autograd engine is
    // PyTorch's, which refuses to run while the GIL is held.
    py.detach(|| {
        let x = Tensor::from_slice(&pred).to_kind(Kind::Double).set_requires_grad(true);
        let y = Tensor::from_slice(&mos).to_kind(Kind::Double);
        let loss = cfg.compute(&x, &y).map_err(|e| e.to_string())?;
        loss.f_backward().map_err(|e| e.to_string())?;
        let value = loss.double_value(&[]);
        let grad = Vec::<f64>::try_from(x.grad()).map_err(|e| e.to_string())?;
        Ok((value, grad))
    })
    .map_err(|e: String| py_err(e))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(norm_in_norm_reference, m)?)?;
    Ok(())
}
