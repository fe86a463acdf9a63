//! Importing models trained elsewhere into a normiqa run folder.
//!
//! [`import_linearityiqa`] reads a checkpoint of the authors' LinearityIQA code
//! (github.com/lidq92/LinearityIQA, `main.py`): `torch.save({'model': IQAModel.state_dict(),
//! 'optimizer': ..., 'amp': ..., 'k': [k0, k1, k2], 'b': [b0, b1, b2]})`, and writes a run folder
//! whose `predict` gives the score of the authors' `test_demo.py`: `y[-1]·k[0] + b[0]`.
//!
//! ## Which k, b belongs to which head
//! `IQAModel.forward` returns `pq = [regr6(x6), regr7(x7), regression(f)]` (normiqa's order
//! [head 6, head 7, fused]). The reference's `IQAPerformance.compute` maps `y_pred[-1]` (fused)
//! with `linear_mapping(.., i=0)`, `y_pred[0]` (head 6) with `i=1` and `y_pred[1]` (head 7) with
//! `i=2`, and `test_demo.py` prints `y[-1]·k[0] + b[0]`. So normiqa's per-head mapping is
//! `[(k[1], b[1]), (k[2], b[2]), (k[0], b[0])]`.
//!
//! ## Parameter names
//! `IQAModel.features = nn.Sequential(*list(torchvision_model.children())[:-2])`:
//! - ResNet/ResNeXt: children `0 conv1, 1 bn1, 2 relu, 3 maxpool, 4..7 layer1..layer4`, so
//!   `features.4.0.conv1.weight` is torchvision's `layer1.0.conv1.weight`;
//! - VGG-16, AlexNet: `features = vgg.features` itself, so `features.N.*` keeps torchvision's name;
//! - heads `dr6.*`, `dr7.*`, `regr6.*`, `regr7.*`, `regression.*` are named as in normiqa.
//!
//! BatchNorm's `num_batches_tracked` is not used; a leading `module.` (DataParallel) is removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use normiqa_core::metrics::LinearMap;
use normiqa_core::weights::pickle::Value;
use normiqa_core::weights::{read_pth_with_top, PthError, ReadOptions, StateDict};
use tch::nn;

use crate::model::linearity::BACKBONE_PREFIX;
use crate::model::weights::raw_to_tensor;
use crate::model::{BackboneName, LinearityIqa, ModelConfig};
use crate::model::stored::save_weights;
use crate::run::info::{write_atomic, RunInfo, SetSizes, Timings, CONFIG_TOML};
use crate::run::{DataConfig, TrainConfig};

/// Written next to `run.json`: where the imported weights came from.
pub const IMPORT_JSON: &str = "import.json";

/// Errors of [`import_linearityiqa`]; each names the checkpoint or the output folder.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Read(#[from] PthError),
    #[error("{file}: {msg}")]
    Format { file: PathBuf, msg: String },
    #[error(
        "--arch {arch}: the reference IQAModel has no such backbone (it builds torchvision's \
         resnet18/34/50, resnext101_32x8d, vgg16 or alexnet); pass the --arch the checkpoint \
         was trained with"
    )]
    UnsupportedArch { arch: BackboneName },
    #[error("{file}: does not match --arch {arch} {options}: {details}")]
    Mismatch {
        file: PathBuf,
        arch: BackboneName,
        options: String,
        details: String,
    },
    #[error("--out {}: {msg}", dir.display())]
    Output { dir: PathBuf, msg: String },
    #[error("writing the run folder {}: {}", dir.display(), crate::cli::error_text(err))]
    Write { dir: PathBuf, err: anyhow::Error },
}

/// What was imported (also saved as `import.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImportRecord {
    pub from: String,
    pub checkpoint: PathBuf,
    /// The checkpoint's own lists, index 0 = fused head.
    pub reference_k: Vec<f64>,
    pub reference_b: Vec<f64>,
    /// Tensors copied into the model.
    pub tensors: usize,
    pub note: String,
}

const NOTE: &str = "mapping = [head6: (k[1], b[1]), head7: (k[2], b[2]), fused: (k[0], b[0])] as \
    the reference IQAPerformance; the training options in config.toml are normiqa's defaults, \
    not the checkpoint's (which it does not record)";

/// normiqa's variable name for a tensor of the reference `IQAModel` state dict; `None` for a
/// tensor that has no counterpart (`num_batches_tracked`, or a name the model does not have).
pub fn normiqa_name(reference: &str, arch: BackboneName) -> Option<String> {
    let name = reference.strip_prefix("module.").unwrap_or(reference);
    if name.ends_with("num_batches_tracked") {
        return None;
    }
    let heads = ["dr6.", "dr7.", "regr6.", "regr7.", "regression."];
    if heads.iter().any(|h| name.starts_with(h)) {
        return Some(name.to_string());
    }
    let rest = name.strip_prefix("features.")?;
    match arch {
        BackboneName::Vgg16 | BackboneName::AlexNet => {
            Some(format!("{BACKBONE_PREFIX}.features.{rest}"))
        }
        _ if arch.is_efficientnet_lite() => None,
        _ => {
            let (child, tail) = rest.split_once('.')?;
            let module = match child {
                "0" => "conv1".to_string(),
                "1" => "bn1".to_string(),
                "4" | "5" | "6" | "7" => format!("layer{}", child.parse::<u8>().ok()? - 3),
                _ => return None,
            };
            Some(format!("{BACKBONE_PREFIX}.{module}.{tail}"))
        }
    }
}

/// The `k` or `b` list of the checkpoint: three numbers.
fn read_list(top: &Value, key: &str, file: &Path) -> Result<Vec<f64>, ImportError> {
    let err = |msg: String| ImportError::Format {
        file: file.to_path_buf(),
        msg,
    };
    let v = top.get(key).ok_or_else(|| {
        err(format!(
            "no '{key}' entry: not a LinearityIQA checkpoint (main.py saves a dict with 'model', \
             'k' and 'b')"
        ))
    })?;
    let items = v
        .as_seq()
        .ok_or_else(|| err(format!("'{key}' is a {}, expected a list of 3 numbers", v.kind())))?;
    let nums: Option<Vec<f64>> = items.iter().map(Value::as_f64).collect();
    match nums {
        Some(n) if n.len() == 3 && n.iter().all(|x| x.is_finite()) => Ok(n),
        _ => Err(err(format!(
            "'{key}' must be a list of 3 finite numbers (one per head), found {} item(s)",
            items.len()
        ))),
    }
}

fn options_text(m: &ModelConfig) -> String {
    format!(
        "--pool {} --p6 {} --p7 {}{}",
        serde_json::to_value(m.pool)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        m.p6,
        m.p7,
        if m.use_bn_end { " --use-bn-end" } else { "" }
    )
}

/// Copies the reference state dict into the model's variables (strict both ways).
fn copy_state_dict(
    vs: &nn::VarStore,
    sd: &StateDict,
    model: &ModelConfig,
    file: &Path,
) -> Result<usize, ImportError> {
    let vars = vs.variables();
    let mismatch = |details: String| ImportError::Mismatch {
        file: file.to_path_buf(),
        arch: model.backbone,
        options: options_text(model),
        details,
    };
    let (mut used, mut unexpected) = (BTreeSet::new(), Vec::new());
    for (name, raw) in sd.iter() {
        let Some(ours) = normiqa_name(name, model.backbone) else {
            if !name.ends_with("num_batches_tracked") {
                unexpected.push(name.to_string());
            }
            continue;
        };
        let Some(var) = vars.get(&ours) else {
            unexpected.push(name.to_string());
            continue;
        };
        let want: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
        if want != raw.shape {
            return Err(mismatch(format!(
                "tensor '{name}' has shape {} but the model expects {}",
                shape_text(&raw.shape),
                shape_text(&want)
            )));
        }
        let src = raw_to_tensor(raw).to_kind(var.kind());
        tch::no_grad(|| var.shallow_clone().copy_(&src));
        used.insert(ours);
    }
    let missing: Vec<&String> = vars.keys().filter(|k| !used.contains(*k)).collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(mismatch(format!(
            "{} tensor(s) of the model missing from the checkpoint{}; {} tensor(s) of the \
             checkpoint unknown to the model{}",
            missing.len(),
            first_names(missing.iter().map(|s| s.as_str())),
            unexpected.len(),
            first_names(unexpected.iter().map(|s| s.as_str()))
        )));
    }
    Ok(used.len())
}

fn shape_text(s: &[usize]) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

fn first_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        return String::new();
    }
    let more = if v.len() > 5 { ", ..." } else { "" };
    format!(" ({}{more})", v[..v.len().min(5)].join(", "))
}

/// The score scale of a checkpoint imported without `--dataset`.
pub const UNNAMED_SCALE: &str = "the MOS scale of the data the checkpoint was trained on, which was not named at import (import-checkpoint --dataset ...; the authors' p1q2.pth: KonIQ-10k, 1-5), higher is better";

/// Reads a LinearityIQA checkpoint and writes the run folder `out` (which must not exist or be
/// empty). `data` is recorded in `config.toml` as the dataset the model belongs to; when it was
/// not given (`data_given` false: the default dataset), the scores' scale is recorded as unknown.
pub fn import_linearityiqa(
    checkpoint: &Path,
    model: ModelConfig,
    (data, data_given): (DataConfig, bool),
    out: &Path,
) -> Result<ImportRecord, ImportError> {
    if model.backbone.is_efficientnet_lite() {
        return Err(ImportError::UnsupportedArch {
            arch: model.backbone,
        });
    }
    check_out(out)?;
    let opts = ReadOptions {
        strip_module_prefix: true,
        key: Some("model".into()),
    };
    let (sd, top) = read_pth_with_top(checkpoint, &opts)?;
    let k = read_list(&top, "k", checkpoint)?;
    let b = read_list(&top, "b", checkpoint)?;
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let _net = LinearityIqa::new(&vs, model.clone());
    let tensors = copy_state_dict(&vs, &sd, &model, checkpoint)?;
    let map = |i: usize| LinearMap { k: k[i], b: b[i] };
    // Without the data it was trained on, the scale of its k·ŷ+b is unknown to normiqa (the
    // default dataset, CLIVE, would be a wrong label: the authors' checkpoints are KonIQ-trained).
    let scale = (!data_given).then(|| UNNAMED_SCALE.to_string());
    let mut config = TrainConfig::new(data.dataset.clone());
    config.data = data;
    config.model = model;
    let info = RunInfo {
        normiqa_version: env!("CARGO_PKG_VERSION").to_string(),
        libtorch_version: "2.13.0".to_string(),
        config,
        heads: crate::model::Arch::Linearity.head_names().iter().map(|s| s.to_string()).collect(),
        mapping: vec![map(1), map(2), map(0)],
        best_epoch: 0,
        epochs_done: 0,
        backbone_in_weights: true,
        pretrained_prefix: None,
        sizes: SetSizes::default(),
        val: None,
        test: None,
        train: None,
        timings: Timings::default(),
        device: "cpu".into(),
        constant_mos_batches: 0,
        also: Vec::new(),
        scale,
    };
    let record = ImportRecord {
        from: "linearityiqa".into(),
        checkpoint: checkpoint.to_path_buf(),
        reference_k: k,
        reference_b: b,
        tensors,
        note: NOTE.into(),
    };
    write_run(out, &vs, &info, &record).map_err(|err| ImportError::Write {
        dir: out.to_path_buf(),
        err,
    })?;
    Ok(record)
}

/// The output folder must be new or empty: an existing run is never replaced.
fn check_out(out: &Path) -> Result<(), ImportError> {
    let err = |msg: String| ImportError::Output {
        dir: out.to_path_buf(),
        msg,
    };
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(err(
                    "already exists and is not empty; choose a new folder or remove it".into(),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Writes the folder under a temporary sibling name and renames it into place, so an
/// interrupted import leaves no half-written run (the temporary folder is removed on failure).
fn write_run(
    out: &Path,
    vs: &nn::VarStore,
    info: &RunInfo,
    record: &ImportRecord,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("creating {}", parent.display()))?;
    let name = out.file_name().and_then(|s| s.to_str()).unwrap_or("run");
    let tmp = parent.join(format!(".{name}.import-{}.tmp", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        write_atomic(
            &tmp.join(CONFIG_TOML),
            toml::to_string_pretty(&info.config)?.as_bytes(),
        )?;
        save_weights(vs, &tmp, true)?;
        write_atomic(
            &tmp.join(IMPORT_JSON),
            serde_json::to_string_pretty(record)?.as_bytes(),
        )?;
        info.save(&tmp)?;
        if out.exists() {
            std::fs::remove_dir(out).with_context(|| format!("replacing empty {}", out.display()))?;
        }
        std::fs::rename(&tmp, out)
            .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet_children_map_to_torchvision_modules() {
        let r = BackboneName::ResNet18;
        assert_eq!(
            normiqa_name("features.0.weight", r).as_deref(),
            Some("backbone.conv1.weight")
        );
        assert_eq!(
            normiqa_name("features.1.running_var", r).as_deref(),
            Some("backbone.bn1.running_var")
        );
        assert_eq!(
            normiqa_name("module.features.7.1.downsample.0.weight", r).as_deref(),
            Some("backbone.layer4.1.downsample.0.weight")
        );
        assert_eq!(normiqa_name("features.1.num_batches_tracked", r), None);
        assert_eq!(normiqa_name("features.2.weight", r), None);
        assert_eq!(
            normiqa_name("regression.0.weight", r).as_deref(),
            Some("regression.0.weight")
        );
    }

    #[test]
    fn vgg_and_alexnet_keep_feature_indices() {
        for a in [BackboneName::Vgg16, BackboneName::AlexNet] {
            assert_eq!(
                normiqa_name("features.28.bias", a).as_deref(),
                Some("backbone.features.28.bias")
            );
        }
    }
}
