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
use super::dataset::SplitRequest;

/// A dataset whose used images are decoded: `images[i]` belongs to `dataset.samples[i]`.
pub struct LoadedData {
    pub dataset: Dataset,
    pub split: Split,
    pub images: Vec<RgbImage>,
    pub decode_seconds: f64,
}

/// Loads the dataset named in the config (no decoding).
pub fn load_dataset(spec: &DatasetSpec, opts: &LoadOptions) -> Result<Dataset> {
    spec.load(opts)
}

/// The resize rules of the reference: the dataset's own (CLIVE images that are not 500×500
/// become 500×500); then the optional `--resize H W` for every image.
pub fn resize_rules(cfg: &DataConfig) -> Vec<Resize> {
    let mut rules: Vec<Resize> = cfg.dataset.kind().resize().into_iter().collect();
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
    Ok(match cfg.split {
        SplitProtocol::AllTest => Split::all_test(dataset.len()),
        SplitProtocol::ByReference => Split::by_reference(dataset, split_seed, ratios)?,
        SplitProtocol::Random => Split::random(dataset.len(), split_seed, ratios)?,
        SplitProtocol::Default => match cfg.dataset.kind().own_split(&cfg.dataset, &own_split_request(cfg, split_seed, ratios), dataset) {
            Some(split) => split?,
            None => Split::random(dataset.len(), split_seed, ratios)?,
        },
    })
}

/// What the dataset's own split is asked for.
fn own_split_request(cfg: &DataConfig, seed: u64, ratios: Ratios) -> SplitRequest<'_> {
    SplitRequest { exp_id: cfg.exp_id, splits: cfg.splits.as_deref(), loading: &cfg.loading, seed, ratios }
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

/// One dataset of a run inside the combined sample list of [`load_all`]: the main one (`data`)
/// first, then each of `also`.
pub struct Part {
    /// The dataset on its own (its sample `i` is sample `offset + i` of the combined one).
    pub dataset: Dataset,
    pub data: DataConfig,
    pub offset: usize,
    /// Its split, in its own indices.
    pub split: Split,
}

impl Part {
    /// Its indices `idx` as indices of the combined dataset.
    pub fn global(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter().map(|&i| i + self.offset).collect()
    }
}

/// The run's datasets: the main one and those of `also` (multi-dataset training), loaded, split
/// and decoded, as one combined dataset whose training set is every part's training set and
/// whose validation and test sets are the main dataset's. With no `also` it is [`load`] with one
/// part.
pub fn load_all(cfg: &super::config::TrainConfig) -> Result<(LoadedData, Vec<Part>)> {
    let mut main = load(&cfg.data, cfg.seed)?;
    if cfg.debug {
        // The reference's --debug: 5 batches of training images, 5 validation and test images.
        main.split.train.truncate(5 * cfg.batch_size);
        main.split.val.truncate(5);
        main.split.test.truncate(5);
        tracing::warn!(
            "--debug: training on {} images, validating and testing on {} and {} (the results mean nothing)",
            main.split.train.len(), main.split.val.len(), main.split.test.len()
        );
    }
    let mut parts = vec![Part {
        dataset: main.dataset.clone(),
        data: cfg.data.clone(),
        offset: 0,
        split: main.split.clone(),
    }];
    if cfg.also.is_empty() {
        return Ok((main, parts));
    }
    let LoadedData { mut dataset, mut split, mut images, mut decode_seconds } = main;
    for (n, also) in cfg.also.iter().enumerate() {
        let part = load(&also.data, cfg.seed).with_context(|| format!("also[{}]", n + 1))?;
        if part.dataset.higher_is_better != dataset.higher_is_better {
            let dir = |b: bool| if b { "higher is better" } else { "lower is better" };
            anyhow::bail!(
                "also[{}]: {} ({}) and {} ({}) rate in opposite directions; Norm-in-Norm would learn one of them upside down",
                n + 1, part.dataset.name, dir(part.dataset.higher_is_better), parts[0].dataset.name, dir(dataset.higher_is_better)
            );
        }
        if part.split.train.is_empty() {
            anyhow::bail!("also[{}]: {} has no training images (check its train_ratio)", n + 1, part.dataset.name);
        }
        let offset = dataset.len();
        split.train.extend(part.split.train.iter().map(|&i| i + offset));
        dataset.samples.extend(part.dataset.samples.iter().cloned());
        dataset.name = format!("{} + {}", dataset.name, part.dataset.name);
        images.extend(part.images);
        decode_seconds += part.decode_seconds;
        parts.push(Part { dataset: part.dataset, data: also.data.clone(), offset, split: part.split });
    }
    Ok((LoadedData { dataset, split, images, decode_seconds }, parts))
}

/// The dataset of every sample of the combined dataset of `parts` (0 = the main one).
pub fn groups(parts: &[Part]) -> Vec<usize> {
    parts
        .iter()
        .enumerate()
        .flat_map(|(g, p)| std::iter::repeat(g).take(p.dataset.len()))
        .collect()
}
