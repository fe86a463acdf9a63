//! The IQA criteria of `normiqa_core::metrics` (f64, the same code as `normiqa metrics`).

use normiqa_core::metrics::{self as m, Logistic, MetricsError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::py_err;

fn err(e: MetricsError) -> PyErr {
    py_err(e.to_string())
}

/// Spearman rank-order correlation (ties: average ranks).
#[pyfunction]
fn srocc(pred: Vec<f64>, mos: Vec<f64>) -> PyResult<f64> {
    m::srocc(&pred, &mos).map_err(err)
}

/// Pearson linear correlation.
#[pyfunction]
fn plcc(pred: Vec<f64>, mos: Vec<f64>) -> PyResult<f64> {
    m::plcc(&pred, &mos).map_err(err)
}

/// Kendall rank-order correlation (tau-b).
#[pyfunction]
fn krocc(pred: Vec<f64>, mos: Vec<f64>) -> PyResult<f64> {
    m::krocc(&pred, &mos).map_err(err)
}

/// Root mean squared error.
#[pyfunction]
fn rmse(pred: Vec<f64>, mos: Vec<f64>) -> PyResult<f64> {
    m::rmse(&pred, &mos).map_err(err)
}

/// The least-squares mapping mos ≈ k·pred + b (Norm-in-Norm eq. 17): (k, b).
#[pyfunction]
fn fit_linear(pred: Vec<f64>, mos: Vec<f64>) -> PyResult<(f64, f64)> {
    let map = m::LinearMap::fit(&pred, &mos).map_err(err)?;
    Ok((map.k, map.b))
}

/// SROCC, PLCC, KROCC, RMSE and n of (pred, mos), after the linear mapping (k, b) when given
/// (as `normiqa metrics` and the reference's IQAPerformance).
#[pyfunction]
#[pyo3(signature = (pred, mos, mapping=None))]
fn evaluate<'py>(
    py: Python<'py>,
    pred: Vec<f64>,
    mos: Vec<f64>,
    mapping: Option<(f64, f64)>,
) -> PyResult<Bound<'py, PyDict>> {
    let map = mapping.map(|(k, b)| m::LinearMap { k, b });
    let r = m::Metrics::compute_mapped(&pred, &mos, map.as_ref()).map_err(err)?;
    let d = PyDict::new(py);
    d.set_item("srocc", r.srocc)?;
    d.set_item("plcc", r.plcc)?;
    d.set_item("krocc", r.krocc)?;
    d.set_item("rmse", r.rmse)?;
    d.set_item("n", r.n)?;
    Ok(d)
}

fn curve(name: &str) -> PyResult<Logistic> {
    name.parse::<Logistic>().map_err(py_err)
}

/// Fits the 4- or 5-parameter logistic curve (pyiqa's start points, Levenberg–Marquardt):
/// (params, plcc, rmse, iterations) of the mapped predictions.
#[pyfunction]
fn fit_logistic(name: &str, pred: Vec<f64>, mos: Vec<f64>) -> PyResult<(Vec<f64>, f64, f64, usize)> {
    let fit = m::fit_logistic(curve(name)?, &pred, &mos).map_err(err)?;
    Ok((fit.params, fit.plcc, fit.rmse, fit.iterations))
}

/// The logistic curve `name` with parameters `params` at each x.
#[pyfunction]
fn logistic_apply(name: &str, params: Vec<f64>, x: Vec<f64>) -> PyResult<Vec<f64>> {
    let c = curve(name)?;
    let want = if c == Logistic::Logistic4 { 4 } else { 5 };
    if params.len() != want {
        return Err(py_err(format!("{name}: expected {want} parameters, got {}", params.len())));
    }
    Ok(c.apply(&params, &x))
}

/// Paired t-test of mean(a - b) = 0 (scipy.stats.ttest_rel): (t, df, p two-sided, mean diff).
#[pyfunction]
fn paired_t_test(a: Vec<f64>, b: Vec<f64>) -> PyResult<(f64, f64, f64, f64)> {
    let t = m::paired_t_test(&a, &b).map_err(err)?;
    Ok((t.t, t.df, t.p_two_sided, t.mean_diff))
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(srocc, module)?)?;
    module.add_function(wrap_pyfunction!(plcc, module)?)?;
    module.add_function(wrap_pyfunction!(krocc, module)?)?;
    module.add_function(wrap_pyfunction!(rmse, module)?)?;
    module.add_function(wrap_pyfunction!(fit_linear, module)?)?;
    module.add_function(wrap_pyfunction!(evaluate, module)?)?;
    module.add_function(wrap_pyfunction!(fit_logistic, module)?)?;
    module.add_function(wrap_pyfunction!(logistic_apply, module)?)?;
    module.add_function(wrap_pyfunction!(paired_t_test, module)?)?;
    Ok(())
}
