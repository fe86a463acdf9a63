//! Frozen-backbone mode: the pooled backbone features of every image, computed once (eval-mode
//! BatchNorm) and kept on disk, so repeated runs (other losses, seeds, sweeps) on the same images
//! and backbone skip the backbone entirely.
//!
//! The cache key covers everything the features depend on: backbone, pretrained-weight file
//! (canonical path, size, modification time), pooling, pyramid levels, resize rules, and the
//! canonical image paths in order (so `./x` and `x` hit the same entry). A key file next to the
//! tensors is compared in full before a cache file is used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tch::{Device, Tensor};

use crate::model::ModelConfig;

/// The cache folder: `$NORMIQA_FEATURE_CACHE`, else `.normiqa-cache` in the working directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("NORMIQA_FEATURE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".normiqa-cache"))
}

/// The full description of what the cached features depend on.
pub fn cache_key(
    model: &ModelConfig,
    weights: Option<&Path>,
    resize: &str,
    paths: &[&Path],
) -> String {
    let wdesc = match weights {
        Some(w) => {
            let meta = std::fs::metadata(w).ok();
            let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let mtime = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("{}|{size}|{mtime}", canonical(w).display())
        }
        None => "random".into(),
    };
    let mut key = format!(
        "v1|{}|{:?}|{}|{}|{wdesc}|{resize}\n",
        model.backbone, model.pool, model.p6, model.p7
    );
    for p in paths {
        key.push_str(&canonical(p).display().to_string());
        key.push('\n');
    }
    key
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// FNV-1a, 64 bits: a stable file name for a key.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn files(key: &str) -> (PathBuf, PathBuf) {
    let dir = cache_dir();
    let stem = format!("features-{:016x}", fnv1a(key));
    (
        dir.join(format!("{stem}.safetensors")),
        dir.join(format!("{stem}.key")),
    )
}

/// Loads cached (f6, f7) for `key`, if present and the stored key matches.
pub fn load(key: &str, device: Device) -> Option<(Tensor, Tensor)> {
    let (tensors, keyfile) = files(key);
    if std::fs::read_to_string(&keyfile).ok()? != key {
        return None;
    }
    let t = Tensor::read_safetensors(&tensors).ok()?;
    let get = |n: &str| {
        t.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.to_device(device))
    };
    Some((get("f6")?, get("f7")?))
}

/// Stores (f6, f7) for `key` (atomically: temporary files, then renames; tensors first). A
/// failed write (a full disk) leaves no partial file in the cache.
pub fn store(key: &str, f6: &Tensor, f7: &Tensor) -> Result<()> {
    let (tensors, keyfile) = files(key);
    let dir = cache_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating feature cache {}", dir.display()))?;
    let (a, b) = (f6.to_device(Device::Cpu), f7.to_device(Device::Cpu));
    crate::atomic::write_via_path(&tensors, |tmp| {
        Tensor::write_safetensors(&[("f6", &a), ("f7", &b)], tmp)
    })?;
    super::checkpoint::write_atomic(&keyfile, key.as_bytes())
}
