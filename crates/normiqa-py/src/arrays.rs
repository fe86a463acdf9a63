//! numpy HxWx3 uint8 arrays <-> `image::RgbImage`.

use image::RgbImage;
use numpy::ndarray::Array3;
use numpy::{IntoPyArray, PyArray3, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::py_err;

/// A copy of an HxWx3 uint8 array as an RGB image; `what` names it in errors ("array 2",
/// "reference").
pub fn to_rgb(a: &PyReadonlyArray3<'_, u8>, what: &str) -> PyResult<RgbImage> {
    let shape = a.shape();
    let (h, w, c) = (shape[0], shape[1], shape[2]);
    if c != 3 || h == 0 || w == 0 {
        return Err(py_err(format!(
            "{what}: expected an HxWx3 uint8 RGB array with H, W > 0, got shape {shape:?}"
        )));
    }
    let data: Vec<u8> = match a.as_slice() {
        Ok(s) => s.to_vec(),
        // Not C-contiguous (a slice, a transpose): copy element by element in H, W, C order.
        Err(_) => a.as_array().iter().copied().collect(),
    };
    RgbImage::from_raw(w as u32, h as u32, data)
        .ok_or_else(|| py_err(format!("{what}: {h}x{w}x3 does not fit in an image")))
}

/// An RGB image as a new HxWx3 uint8 array.
pub fn from_rgb<'py>(py: Python<'py>, img: RgbImage) -> Bound<'py, PyArray3<u8>> {
    let (w, h) = img.dimensions();
    Array3::from_shape_vec((h as usize, w as usize, 3), img.into_raw())
        .expect("an RgbImage holds H*W*3 bytes")
        .into_pyarray(py)
}
