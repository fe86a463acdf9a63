//! Moving weights in and out of a VarStore: pretrained PyTorch `.pth` state dicts (read by
//! `normiqa_core::weights`), and normiqa's own safetensors checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use normiqa_core::weights::{read_pth, DType, RawTensor};
use tch::{nn, Kind, Tensor};

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

/// Copies a PyTorch state dict into the variables under `prefix` (strict: every variable must be
/// found with the right shape; every tensor of the file must be used, except `ignored` prefixes
/// and BatchNorm's `num_batches_tracked`). Returns the number of tensors loaded.
pub fn load_pth(vs: &nn::VarStore, prefix: &str, file: &Path, ignored: &[&str]) -> Result<usize> {
    let sd =
        read_pth(file).with_context(|| format!("reading pretrained weights {}", file.display()))?;
    let vars = vs.variables();
    let ours: BTreeMap<String, &Tensor> = vars
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(&format!("{prefix}."))
                .map(|n| (n.to_string(), v))
        })
        .collect();
    let mut used = BTreeSet::new();
    let mut unexpected = Vec::new();
    for (name, raw) in sd.tensors.iter() {
        let name = name.strip_prefix("module.").unwrap_or(name);
        if name.ends_with("num_batches_tracked") || ignored.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let Some(var) = ours.get(name) else {
            unexpected.push(name.to_string());
            continue;
        };
        let want: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
        if want != raw.shape {
            bail!(
                "{}: tensor '{name}' has shape {:?} but the model expects {:?} (wrong backbone for this file?)",
                file.display(),
                raw.shape,
                want
            );
        }
        let src = raw_to_tensor(raw)
            .to_kind(var.kind())
            .to_device(var.device());
        tch::no_grad(|| var.shallow_clone().copy_(&src));
        used.insert(name.to_string());
    }
    let missing: Vec<&String> = ours.keys().filter(|k| !used.contains(*k)).collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        bail!(
            "{}: does not match the backbone: {} missing tensor(s) {:?}{}, {} unexpected {:?}{}",
            file.display(),
            missing.len(),
            &missing[..missing.len().min(5)],
            if missing.len() > 5 { " ..." } else { "" },
            unexpected.len(),
            &unexpected[..unexpected.len().min(5)],
            if unexpected.len() > 5 { " ..." } else { "" },
        );
    }
    Ok(used.len())
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

/// Loads a safetensors file into the VarStore: every tensor in the file must match a variable.
pub fn load_safetensors(vs: &nn::VarStore, file: &Path) -> Result<usize> {
    let tensors =
        Tensor::read_safetensors(file).with_context(|| format!("reading {}", file.display()))?;
    let vars = vs.variables();
    for (name, t) in tensors.iter() {
        let Some(var) = vars.get(name) else {
            bail!(
                "{}: tensor '{name}' does not belong to this model (config mismatch?)",
                file.display()
            );
        };
        if var.size() != t.size() {
            bail!(
                "{}: tensor '{name}' has shape {:?}, the model expects {:?}",
                file.display(),
                t.size(),
                var.size()
            );
        }
        tch::no_grad(|| {
            var.shallow_clone()
                .copy_(&t.to_kind(var.kind()).to_device(var.device()))
        });
    }
    Ok(tensors.len())
}
