//! `normiqa._normiqa`: the native half of the `normiqa` Python package (PyO3). The Python modules
//! in `python/normiqa/` wrap these functions with defaults, numpy conversions and docstrings;
//! `python/normiqa/_normiqa.pyi` types them.
//!
//! Every function that runs the network, decodes images or trains releases the GIL
//! (`Python::detach`), so other Python threads keep running meanwhile.

mod arrays;
mod data;
mod fr;
mod log;
mod loss;
mod metrics;
mod score;
mod train;

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

create_exception!(
    _normiqa,
    NormiqaError,
    PyRuntimeError,
    "An error of normiqa (a bad option, a missing file, a failed run); the message says what and where."
);
create_exception!(
    _normiqa,
    ImageError,
    NormiqaError,
    "One or more images could not be scored; the message names each file (or array) and why."
);

/// An anyhow error as a [`NormiqaError`] with its whole chain ("what: why: cause").
pub(crate) fn to_py(e: anyhow::Error) -> PyErr {
    NormiqaError::new_err(normiqa::cli::error_text(&e))
}

/// A plain message as a [`NormiqaError`].
pub(crate) fn py_err(msg: impl Into<String>) -> PyErr {
    NormiqaError::new_err(msg.into())
}

#[pymodule]
fn _normiqa(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("NormiqaError", py.get_type::<NormiqaError>())?;
    m.add("ImageError", py.get_type::<ImageError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    log::install();
    m.add_function(wrap_pyfunction!(log::set_progress, m)?)?;
    score::register(m)?;
    metrics::register(m)?;
    fr::register(m)?;
    data::register(m)?;
    train::register(m)?;
    loss::register(m)?;
    Ok(())
}
