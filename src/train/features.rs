//! Frozen-backbone mode: the pooled backbone features of every image, computed once (eval-mode
//! BatchNorm) and kept on disk, so repeated runs (other losses, seeds, sweeps) on the same images
//! and backbone skip the backbone entirely. With partial fine-tuning (`freeze_blocks = K`,
//! [`crate::model::partial`]) the cached taps are the output of the frozen stem and first K
//! blocks (maps, in bf16 unless fp32 is asked), so each step runs only the later blocks.
//!
//! The cache key covers everything the features depend on: backbone, pretrained-weight file
//! (canonical path, size, modification time in nanoseconds), pooling, pyramid levels, resize
//! rules and truncated-JPEG opt-in, and every image in order: its canonical path (so `./x` and
//! `x` hit the same entry), size, modification time and a hash of its bytes (xxh3-64), so an
//! image edited in place, even to the same size within the same second, is another key. A key
//! file next to the tensors is compared in full before a cache file is used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::RgbImage;
use rayon::prelude::*;
use normiqa_core::data::Dataset;
use tch::{Device, Tensor};

use crate::infer::trained::compute_taps;
use crate::model::{IqaModel, ModelConfig};
use crate::run::config::DataConfig;

/// The cache folder: `$NORMIQA_FEATURE_CACHE`, else `.normiqa-cache` in the working directory.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("NORMIQA_FEATURE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".normiqa-cache"))
}

/// The full description of what the cached features depend on.
/// `tag`: what else the taps depend on ([`IqaModel::cache_tag`]: empty for the pooled levels of
/// LinearityIQA and the plain regressor, so their entries are shared; `prefix-K-bf16` for the
/// frozen prefix of partial fine-tuning).
pub fn cache_key(
    model: &ModelConfig,
    weights: Option<&Path>,
    resize: &str,
    tag: &str,
    paths: &[&Path],
) -> String {
    let wdesc = weights.map_or("random".into(), file_desc);
    let mut key = format!(
        "v2|{}|{:?}|{}|{}|{wdesc}|{resize}",
        model.backbone, model.pool, model.p6, model.p7
    );
    if !tag.is_empty() {
        key.push_str(&format!("|{tag}"));
        if let Some(s) = &model.scnn_weights {
            key.push_str(&format!("|{}", file_desc(s)));
        }
    }
    key.push('\n');
    let images: Vec<String> = paths.par_iter().map(|p| image_desc(p)).collect();
    for line in images {
        key.push_str(&line);
        key.push('\n');
    }
    key
}

/// A file as the key names it: canonical path, size and modification time in nanoseconds (a
/// rewritten file is another key).
fn file_desc(w: &Path) -> String {
    let meta = std::fs::metadata(w).ok();
    let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}|{size}|{mtime}", canonical(w).display())
}

/// An image as the key names it: [`file_desc`] and the xxh3-64 hash of its bytes (reading is
/// cheap beside decoding; an unreadable file hashes as `unreadable`, and its decode will say why).
fn image_desc(p: &Path) -> String {
    let hash = std::fs::read(p).map_or_else(
        |_| "unreadable".to_string(),
        |b| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&b)),
    );
    format!("{}|{hash}", file_desc(p))
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

/// Name of tap `i` in a cache file (`f6`, `f7` for the two LinearityIQA levels).
fn tap_name(i: usize) -> String {
    match i {
        0 => "f6".into(),
        1 => "f7".into(),
        i => format!("t{i}"),
    }
}

/// Loads the cached taps for `key`, if present, the stored key matches and they have `rows` rows.
pub fn load(key: &str, n_taps: usize, rows: i64, device: Device) -> Option<Vec<Tensor>> {
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
    let taps: Option<Vec<Tensor>> = (0..n_taps).map(|i| get(&tap_name(i))).collect();
    taps.filter(|v| v.iter().all(|t| t.size()[0] == rows))
}

/// Stores the taps for `key` (atomically: temporary files, then renames; tensors first). A
/// failed write (a full disk) leaves no partial file in the cache.
pub fn store(key: &str, taps: &[Tensor]) -> Result<()> {
    let (tensors, keyfile) = files(key);
    let dir = cache_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating feature cache {}", dir.display()))?;
    let named: Vec<(String, Tensor)> = taps
        .iter()
        .enumerate()
        .map(|(i, t)| (tap_name(i), t.to_device(Device::Cpu)))
        .collect();
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    crate::atomic::write_via_path(&tensors, |tmp| Tensor::write_safetensors(&refs, tmp))?;
    crate::run::info::write_atomic(&keyfile, key.as_bytes())
}

/// What a frozen backbone's taps are computed from.
pub struct TapSource<'a> {
    /// The network that computes them (eval mode; its backbone weights loaded).
    pub model: &'a dyn IqaModel,
    /// The pretrained-weight file (part of the key); `None` = random initialisation: the taps
    /// are neither read from nor written to the cache.
    pub weights: Option<&'a Path>,
    pub dataset: &'a Dataset,
    /// How the images are decoded and resized (part of the key).
    pub data: &'a DataConfig,
    /// The samples that need taps (others stay zero).
    pub indices: &'a [usize],
}

/// Decoded images, or what to decode when they are first needed.
pub enum Images<'a> {
    Decoded(&'a [RgbImage]),
    /// Every image of the dataset, decoded with these rules on first use.
    Lazy {
        data: DataConfig,
        decoded: Option<Vec<RgbImage>>,
    },
}

impl Images<'_> {
    /// The images, decoding them now if needed.
    pub fn get(&mut self, dataset: &Dataset) -> Result<&[RgbImage]> {
        match self {
            Images::Decoded(images) => Ok(images),
            Images::Lazy { data, decoded } => {
                if decoded.is_none() {
                    let all = normiqa_core::data::split::Split::all_test(dataset.len());
                    let (im, secs) = crate::run::data::decode_used(dataset, &all, data)?;
                    tracing::info!("{}: decoded {} images in {:.1} s", dataset.name, im.len(), secs);
                    *decoded = Some(im);
                }
                Ok(decoded.as_deref().expect("decoded above"))
            }
        }
    }
}

/// The most images one backbone pass of the feature extraction takes. A large evaluation batch
/// (`eval_batch_size = 256`) is cheap for heads on cached features, but through the backbone
/// its activations grow with it: 256 images of 500x500 needed over 20 GB here and swapped for
/// a quarter of an hour; batch 16 peaks near 1.5 GB (BENCHMARKS.md, "How cost grows").
pub const MAX_BACKBONE_BATCH: usize = 16;

/// The one rule of the feature cache: load the taps of `src` from the cache, or compute them
/// (decoding `images` only then) and store them.
pub fn load_or_compute(
    src: &TapSource,
    images: &mut Images,
    eval_bs: usize,
    device: Device,
) -> Result<Vec<Tensor>> {
    let mut sorted = src.indices.to_vec();
    sorted.sort_unstable();
    let paths: Vec<&Path> = sorted
        .iter()
        .map(|&i| src.dataset.samples[i].path.as_path())
        .collect();
    let fc = src.model.feature_config();
    let tag = src.model.cache_tag();
    let key = cache_key(&fc, src.weights, &decoding_key(src.data), &tag, &paths);
    let n_taps = src.model.tap_widths().len();
    let rows = src.dataset.len() as i64;
    if let Some(taps) = src.weights.and_then(|_| load(&key, n_taps, rows, device)) {
        tracing::info!(
            "{}: {} features of {} images loaded from the cache {}",
            src.dataset.name,
            fc.backbone,
            src.indices.len(),
            cache_dir().display()
        );
        return Ok(taps);
    }
    let t0 = std::time::Instant::now();
    let bs = eval_bs.min(MAX_BACKBONE_BATCH);
    let taps = compute_taps(src.model, images.get(src.dataset)?, src.indices, bs, device)?;
    tracing::info!(
        "{}: computed {} features of {} images in {:.1} s",
        src.dataset.name,
        fc.backbone,
        src.indices.len(),
        t0.elapsed().as_secs_f64()
    );
    if src.weights.is_some() {
        if let Err(e) = store(&key, &taps) {
            tracing::warn!("could not cache the features: {}", crate::cli::error_text(&e));
        }
    }
    Ok(taps)
}

/// What of the data configuration changes the decoded pixels: the resize rules, and whether
/// truncated JPEGs are accepted (their missing part comes out grey). The pixel limit only refuses.
fn decoding_key(data: &DataConfig) -> String {
    let rules = format!("{:?}", crate::run::data::resize_rules(data));
    match data.decoding.allow_truncated {
        true => format!("{rules} allow-truncated"),
        false => rules,
    }
}
