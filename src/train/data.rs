//! From a [`DataConfig`] to decoded images in memory: load the dataset, split it, decode every
//! image that a set uses exactly once (in parallel), apply the resize rules.

use anyhow::{Context, Result};
use image::RgbImage;
use normiqa_core::data::{
    self,
    decode::Resize,
    split::{Ratios, Split},
    Dataset, LoadOptions,
};

use super::config::{DataConfig, DatasetSpec, SplitProtocol};

/// A dataset whose used images are decoded: `images[i]` belongs to `dataset.samples[i]`.
pub struct LoadedData {
    pub dataset: Dataset,
    pub split: Split,
    pub images: Vec<RgbImage>,
    pub decode_seconds: f64,
}

/// Loads the dataset named in the config (no decoding).
pub fn load_dataset(spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset> {
    Ok(match spec {
        DatasetSpec::Clive { root } => data::clive::load(root, opts)?,
        DatasetSpec::Koniq { labels, images } => data::koniq::load(labels, images, opts)?,
        DatasetSpec::Kadid { root } => data::kadid::load(root, opts)?,
        DatasetSpec::Tid2013 { root } => data::tid2013::load(root, opts)?,
        DatasetSpec::Csv {
            csv,
            images,
            image_column,
            mos_column,
        } => {
            let cols = data::csv::CsvColumns {
                image: image_column.clone(),
                mos: mos_column.clone(),
                ..Default::default()
            };
            data::csv::load(csv, images, &cols, opts)?
        }
    })
}

/// The resize rules of the reference: CLIVE images that are not 500×500 become 500×500; then the
/// optional `--resize H W` for every image.
pub fn resize_rules(cfg: &DataConfig) -> Vec<Resize> {
    let mut rules = Vec::new();
    if matches!(cfg.dataset, DatasetSpec::Clive { .. }) {
        rules.push(Resize::IfNot { h: 500, w: 500 });
    }
    if let Some([h, w]) = cfg.resize {
        rules.push(Resize::Exact { h, w });
    }
    rules
}

/// Splits the dataset as configured.
pub fn split_dataset(cfg: &DataConfig, dataset: &Dataset, seed: u64) -> Result<Split> {
    let ratios = Ratios {
        train: cfg.train_ratio,
        train_val: cfg.train_val_ratio,
    };
    let split_seed = seed.wrapping_add(cfg.exp_id as u64);
    Ok(match (cfg.split, &cfg.dataset) {
        (SplitProtocol::AllTest, _) => Split::all_test(dataset.len()),
        (SplitProtocol::Default, DatasetSpec::Clive { root }) => {
            data::clive::split(root, dataset, cfg.exp_id, ratios)?
        }
        (SplitProtocol::Default, DatasetSpec::Koniq { labels, images }) => {
            data::koniq::load_with_split(labels, images, &cfg.loading)?.1
        }
        (SplitProtocol::ByReference, _) => Split::by_reference(dataset, split_seed, ratios)?,
        (SplitProtocol::Default, DatasetSpec::Kadid { .. } | DatasetSpec::Tid2013 { .. }) => {
            Split::by_reference(dataset, split_seed, ratios)?
        }
        (SplitProtocol::Default | SplitProtocol::Random, _) => {
            Split::random(dataset.len(), split_seed, ratios)?
        }
    })
}

/// "epoch E, batch B (images [..])": where a training error happened (1-based), for messages.
pub fn batch_context(dataset: &Dataset, idx: &[usize], epoch: usize, batch: usize) -> String {
    let names: Vec<&str> = idx
        .iter()
        .map(|&i| dataset.samples[i].name.as_str())
        .collect();
    format!(
        "epoch {}, batch {} (images {})",
        epoch + 1,
        batch + 1,
        names.join(", ")
    )
}

/// A split a training run can use: at least one full batch of training images, a test set.
pub fn check_trainable(split: &Split, cfg: &DataConfig, batch_size: usize) -> Result<()> {
    if split.train.len() < batch_size {
        anyhow::bail!(
            "the training set has {} images, fewer than --batch-size {} (no full batch; check --train-ratio)",
            split.train.len(),
            batch_size
        );
    }
    if split.test.is_empty() {
        anyhow::bail!(
            "the test set is empty (--train-val-ratio {} leaves nothing for test)",
            cfg.train_val_ratio
        );
    }
    Ok(())
}

/// Loads, splits and decodes. Images of samples in no set are left empty (0×0).
pub fn load(cfg: &DataConfig, seed: u64) -> Result<LoadedData> {
    let dataset = load_dataset(&cfg.dataset, &cfg.loading)?;
    let split = split_dataset(cfg, &dataset, seed)?;
    let (images, decode_seconds) = decode_used(&dataset, &split, cfg)?;
    Ok(LoadedData {
        dataset,
        split,
        images,
        decode_seconds,
    })
}

/// Decodes the images of all sets of `split`, once each, in parallel, with the resize rules
/// and decoding options of `cfg`.
pub fn decode_used(
    dataset: &Dataset,
    split: &Split,
    cfg: &DataConfig,
) -> Result<(Vec<RgbImage>, f64)> {
    let mut used: Vec<usize> = split
        .train
        .iter()
        .chain(&split.val)
        .chain(&split.test)
        .copied()
        .collect();
    used.sort_unstable();
    used.dedup();
    let paths: Vec<_> = used
        .iter()
        .map(|&i| dataset.samples[i].path.clone())
        .collect();
    let t0 = std::time::Instant::now();
    let decoded = data::decode::decode_all(&paths, &resize_rules(cfg), &cfg.decoding)
        .with_context(|| format!("decoding {} images of {}", paths.len(), dataset.name))?;
    let secs = t0.elapsed().as_secs_f64();
    let mut images = vec![RgbImage::new(0, 0); dataset.len()];
    for (i, im) in used.into_iter().zip(decoded) {
        images[i] = im;
    }
    Ok((images, secs))
}
