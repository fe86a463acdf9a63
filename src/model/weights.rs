//! Moving weights in and out of a VarStore: pretrained PyTorch `.pth` state dicts (read by
//! `normiqa_core::weights`), and normiqa's own safetensors checkpoints.
//!
//! Loading is strict: the file must hold exactly the tensors the model expects, with the
//! model's shapes. Otherwise nothing is loaded and one [`WeightsError::Mismatch`] lists the
//! missing, unexpected and wrongly shaped tensors (so a file that lacks some tensors can never
//! leave them at their random initial values).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use normiqa_core::weights::{read_pth, DType, RawTensor};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use tch::{nn, Kind, Tensor};

/// How many names of each kind a [`Mismatch`] message lists before "and N more".
const LISTED: usize = 5;

/// The differences between the tensors a model expects and those a file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mismatch {
    /// Expected by the model, absent from the file.
    pub missing: Vec<String>,
    /// In the file, not part of the model (or of the part being loaded).
    pub unexpected: Vec<String>,
    /// (name, shape in the file, shape in the model).
    pub wrong_shape: Vec<(String, Vec<i64>, Vec<i64>)>,
}

impl Mismatch {
    /// Compares the (name, shape) pairs of a file with those the model expects.
    pub fn between(file: &BTreeMap<String, Vec<i64>>, model: &BTreeMap<String, Vec<i64>>) -> Self {
        let mut m = Mismatch::default();
        for (name, want) in model {
            match file.get(name) {
                None => m.missing.push(name.clone()),
                Some(got) if got != want => {
                    m.wrong_shape
                        .push((name.clone(), got.clone(), want.clone()))
                }
                Some(_) => {}
            }
        }
        m.unexpected = file
            .keys()
            .filter(|k| !model.contains_key(*k))
            .cloned()
            .collect();
        m
    }

    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.wrong_shape.is_empty()
    }
}

fn shape_text(s: &[i64]) -> String {
    if s.is_empty() {
        return "scalar".into();
    }
    s.iter().map(i64::to_string).collect::<Vec<_>>().join("x")
}

/// "a, b, c, d, e and 3 more"
fn capped(items: impl ExactSizeIterator<Item = String>) -> String {
    let n = items.len();
    let mut text = items.take(LISTED).collect::<Vec<_>>().join(", ");
    if n > LISTED {
        text.push_str(&format!(" and {} more", n - LISTED));
    }
    text
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} missing tensor(s) ({})",
                self.missing.len(),
                capped(self.missing.iter().cloned())
            ));
        }
        if !self.unexpected.is_empty() {
            parts.push(format!(
                "{} unexpected tensor(s) ({})",
                self.unexpected.len(),
                capped(self.unexpected.iter().cloned())
            ));
        }
        if !self.wrong_shape.is_empty() {
            let items = self.wrong_shape.iter().map(|(n, got, want)| {
                format!(
                    "{n}: {} in the file, {} in the model",
                    shape_text(got),
                    shape_text(want)
                )
            });
            parts.push(format!(
                "{} tensor(s) of another shape ({})",
                self.wrong_shape.len(),
                capped(items)
            ));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// Why a weights file could not be loaded; every message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: does not fit the model: {mismatch}. {hint}", path.display())]
    Mismatch {
        path: PathBuf,
        mismatch: Mismatch,
        hint: &'static str,
    },
}

const RUN_HINT: &str = "The file belongs to another configuration or is damaged: \
                        restore it, or train the run again";
const PTH_HINT: &str = "Is it the weights of another backbone? Pass the ImageNet weights of the \
                        backbone the model uses (--arch), as a PyTorch state dict";

/// Shapes of the VarStore's variables under `prefix.` (prefix removed), or of all variables
/// selected by `keep` when `prefix` is empty.
fn expected_shapes(
    vs: &nn::VarStore,
    prefix: &str,
    keep: impl Fn(&str) -> bool,
) -> BTreeMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .filter(|(k, _)| keep(k))
        .filter_map(|(k, v)| {
            let name = if prefix.is_empty() {
                Some(k.as_str())
            } else {
                k.strip_prefix(prefix).and_then(|r| r.strip_prefix('.'))
            };
            name.map(|n| (n.to_string(), v.size()))
        })
        .collect()
}

/// Copies `src` into the variable (kind and device of the variable).
fn assign(var: &Tensor, src: &Tensor) {
    tch::no_grad(|| {
        var.shallow_clone()
            .copy_(&src.to_kind(var.kind()).to_device(var.device()))
    });
}

/// Converts a tensor read from a `.pth` file to a tch tensor (f32 for floating types).
pub fn raw_to_tensor(raw: &RawTensor) -> Tensor {
    let shape: Vec<i64> = raw.shape.iter().map(|&d| d as i64).collect();
    match raw.dtype {
        DType::I64 => {
            let v: Vec<i64> = raw
                .data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Tensor::from_slice(&v).reshape(shape)
        }
        _ => Tensor::from_slice(&raw.to_f32_vec()).reshape(shape),
    }
}

/// Copies a PyTorch state dict into the variables under `prefix`, strictly: every variable must
/// be in the file with its shape, and every tensor of the file must be used, except `ignored`
/// prefixes and BatchNorm's `num_batches_tracked` (a leading `module.` is removed). Returns the
/// number of tensors loaded; on any difference nothing is loaded.
pub fn load_pth(vs: &nn::VarStore, prefix: &str, file: &Path, ignored: &[&str]) -> Result<usize> {
    let sd = read_pth(file).context("reading pretrained backbone weights")?;
    let mut tensors: BTreeMap<String, &RawTensor> = BTreeMap::new();
    for (name, raw) in sd.iter() {
        let name = name.strip_prefix("module.").unwrap_or(name);
        if !name.ends_with("num_batches_tracked") && !ignored.iter().any(|p| name.starts_with(p)) {
            tensors.insert(name.to_string(), raw);
        }
    }
    let shapes = tensors
        .iter()
        .map(|(n, r)| (n.clone(), r.shape.iter().map(|&d| d as i64).collect()))
        .collect();
    let mismatch = Mismatch::between(&shapes, &expected_shapes(vs, prefix, |_| true));
    if !mismatch.is_empty() {
        return Err(WeightsError::Mismatch {
            path: file.to_path_buf(),
            mismatch,
            hint: PTH_HINT,
        }
        .into());
    }
    let vars = vs.variables();
    for (name, raw) in &tensors {
        assign(&vars[&format!("{prefix}.{name}")], &raw_to_tensor(raw));
    }
    Ok(tensors.len())
}

/// Writes the variables whose names satisfy `keep` to a safetensors file, atomically (a temporary
/// file in the same directory, then a rename), so an interrupted save never leaves a broken file
/// and a failed one no partial temporary file.
pub fn save_safetensors(vs: &nn::VarStore, file: &Path, keep: impl Fn(&str) -> bool) -> Result<()> {
    let vars = vs.variables();
    let mut named: Vec<(String, Tensor)> = vars
        .into_iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| {
            (
                k,
                v.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float),
            )
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
    crate::atomic::write_via_path(file, |tmp| Tensor::write_safetensors(&refs, tmp))?;
    Ok(())
}

/// A safetensors parse error in words.
fn safetensors_reason(e: &SafeTensorError) -> String {
    let what = match e {
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            "it is too short for its header (empty or truncated)".to_string()
        }
        SafeTensorError::HeaderTooLarge => "its header length is implausibly large".into(),
        SafeTensorError::InvalidHeader
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization
        | SafeTensorError::JsonError(_) => "its header is not valid safetensors JSON".into(),
        SafeTensorError::InvalidOffset(name) => {
            format!("the data offsets of tensor '{name}' are invalid (truncated file?)")
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            "its tensor data does not match the header (truncated or padded file)".into()
        }
        SafeTensorError::IoError(io) => io.to_string(),
        _ => "its tensor table is inconsistent".into(),
    };
    format!("not a readable safetensors file: {what}")
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        _ => return None,
    })
}

/// Loads a safetensors file into the VarStore, strictly: the file must hold exactly the variables
/// selected by `expected` (by full name), each with the variable's shape; on any difference
/// nothing is loaded. Returns the number of tensors loaded.
pub fn load_safetensors(
    vs: &nn::VarStore,
    file: &Path,
    expected: impl Fn(&str) -> bool,
) -> Result<usize, WeightsError> {
    let unreadable = |reason: String| WeightsError::Unreadable {
        path: file.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(file).map_err(|e| unreadable(format!("cannot read it: {e}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| unreadable(safetensors_reason(&e)))?;
    let views = st.tensors();
    let shapes = views
        .iter()
        .map(|(n, v)| (n.clone(), v.shape().iter().map(|&d| d as i64).collect()))
        .collect();
    let mismatch = Mismatch::between(&shapes, &expected_shapes(vs, "", expected));
    if !mismatch.is_empty() {
        return Err(WeightsError::Mismatch {
            path: file.to_path_buf(),
            mismatch,
            hint: RUN_HINT,
        });
    }
    let vars = vs.variables();
    for (name, view) in &views {
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            unreadable(format!(
                "tensor '{name}' has an element type other than float32/float64/float16/bfloat16/int64 (normiqa writes float32)"
            ))
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| unreadable(format!("tensor '{name}': {e}")))?;
        assign(&vars[name], &t);
    }
    Ok(views.len())
}
