//! Train / validation / test splits as index lists into [`Dataset::samples`].
//!
//! The cut points follow the reference `IQAdataset.py` of LinearityIQA exactly: with a
//! permutation `index` of the `n` items, train is `index[0 : int(train·n)]`, val is
//! `index[int(train·n) : int(train_val·n)]` and test is `index[int(train_val·n) : n]`, where
//! `int()` truncates (Python). Like the reference (which keeps `i` when `ref_ids[i] in index`),
//! each set lists its indices in ascending (dataset) order.

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::error::{DataError, Result};
use super::Dataset;

/// Split ratios: `train` is the fraction used for training, `train_val` the fraction used for
/// training and validation together (the reference's `train_ratio` and `train_and_val_ratio`).
///
/// `train_val == train` asks for no validation set (e.g. the 80/20 protocol, see
/// [`Ratios::train_test`]); `train_val == 1.0` asks for no test set (train on everything).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ratios {
    pub train: f64,
    pub train_val: f64,
}

impl Default for Ratios {
    /// 0.6 / 0.8: 60 % train, 20 % val, 20 % test (the reference defaults).
    fn default() -> Self {
        Ratios {
            train: 0.6,
            train_val: 0.8,
        }
    }
}

impl Ratios {
    pub fn new(train: f64, train_val: f64) -> Self {
        Ratios { train, train_val }
    }

    /// Train / test only, no validation set (`train_val == train`); `train_test(0.8)` is the
    /// 80/20 protocol.
    pub fn train_test(train: f64) -> Self {
        Ratios {
            train,
            train_val: train,
        }
    }

    /// True when no validation set is asked for (`train_val == train`).
    pub fn no_val(&self) -> bool {
        self.train_val == self.train
    }

    /// True when no test set is asked for (`train_val == 1`).
    pub fn no_test(&self) -> bool {
        self.train_val == 1.0
    }

    /// Checks `0 < train <= train_val <= 1`.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: &str| {
            Err(DataError::BadRatios {
                train: self.train,
                train_val: self.train_val,
                msg: msg.into(),
            })
        };
        if !self.train.is_finite() || !self.train_val.is_finite() {
            return bad("ratios must be finite numbers");
        }
        if self.train <= 0.0 || self.train > 1.0 {
            return bad("--train-ratio must be in (0, 1]");
        }
        if self.train_val < self.train || self.train_val > 1.0 {
            return bad("--train-val-ratio must be in [--train-ratio, 1]");
        }
        Ok(())
    }

    /// The cut points `(int(train·n), int(train_val·n))` (Python `int()` truncation).
    pub fn cuts(&self, n: usize) -> (usize, usize) {
        let a = (self.train * n as f64) as usize;
        let b = (self.train_val * n as f64) as usize;
        (a.min(n), b.min(n).max(a.min(n)))
    }
}

/// How [`split_ids`] draws each split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitMethod {
    /// [`Split::random`] over samples.
    Random,
    /// [`Split::by_reference`]: no reference image in two sets.
    ByReference,
}

/// Indices into [`Dataset::samples`] of the train, validation and test sets (each ascending).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

impl Split {
    /// Cuts a permutation of `0..perm.len()` by `ratios` (see the module doc).
    /// Errors if `perm` is not a permutation, the ratios are invalid, or a set that was not
    /// asked to be empty would be empty.
    pub fn from_permutation(perm: &[usize], ratios: Ratios) -> Result<Split> {
        let n = perm.len();
        let mut seen = vec![false; n];
        for &i in perm {
            if i >= n || seen[i] {
                return Err(DataError::BadSplit(format!(
                    "not a permutation of 0..{n}: index {i} is {}",
                    if i >= n { "out of range" } else { "repeated" }
                )));
            }
            seen[i] = true;
        }
        let (groups, _) = cut(perm, ratios)?;
        Ok(groups)
    }

    /// A random split of `n` items: a ChaCha8 permutation seeded by `seed` (deterministic,
    /// platform-independent), then [`Split::from_permutation`].
    pub fn random(n: usize, seed: u64, ratios: Ratios) -> Result<Split> {
        Split::from_permutation(&permutation(n, seed), ratios)
    }

    /// A random split by reference image: the distinct [`super::Sample::reference`]s (in order
    /// of first appearance) are permuted with ChaCha8(`seed`) and cut by `ratios`; every sample
    /// goes to the set of its reference, so no reference is in two sets.
    pub fn by_reference(dataset: &Dataset, seed: u64, ratios: Ratios) -> Result<Split> {
        let mut ref_ids: HashMap<&str, usize> = HashMap::new();
        let mut sample_ref = Vec::with_capacity(dataset.len());
        for (i, s) in dataset.samples.iter().enumerate() {
            let r = s
                .reference
                .as_deref()
                .ok_or_else(|| DataError::MissingReference {
                    index: i,
                    name: s.name.clone(),
                })?;
            let next = ref_ids.len();
            sample_ref.push(*ref_ids.entry(r).or_insert(next));
        }
        let n_refs = ref_ids.len();
        let (ref_split, _) = cut(&permutation(n_refs, seed), ratios)?;
        let mut which = vec![0u8; n_refs];
        for &r in &ref_split.val {
            which[r] = 1;
        }
        for &r in &ref_split.test {
            which[r] = 2;
        }
        let mut split = Split::default();
        for (i, &r) in sample_ref.iter().enumerate() {
            match which[r] {
                0 => split.train.push(i),
                1 => split.val.push(i),
                _ => split.test.push(i),
            }
        }
        Ok(split)
    }

    /// Every item in the test set (cross-dataset evaluation).
    pub fn all_test(n: usize) -> Split {
        Split {
            train: vec![],
            val: vec![],
            test: (0..n).collect(),
        }
    }

    /// Total number of indices.
    pub fn len(&self) -> usize {
        self.train.len() + self.val.len() + self.test.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Several splits, one per id: split `id` uses seed `seed + id` (wrapping), so a run with
/// `--exp-id k` reproduces the `k`-th of them.
pub fn split_ids(
    dataset: &Dataset,
    method: SplitMethod,
    seed: u64,
    ids: &[u64],
    ratios: Ratios,
) -> Result<Vec<Split>> {
    ids.iter()
        .map(|&id| {
            let s = seed.wrapping_add(id);
            match method {
                SplitMethod::Random => Split::random(dataset.len(), s, ratios),
                SplitMethod::ByReference => Split::by_reference(dataset, s, ratios),
            }
        })
        .collect()
}

/// The ChaCha8(`seed`) permutation of `0..n` used by [`Split::random`].
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    perm.shuffle(&mut rng);
    perm
}

/// Cuts `perm` (items to split, not necessarily a permutation of 0..len) by `ratios`,
/// checking that no set is empty unless asked for.
fn cut(perm: &[usize], ratios: Ratios) -> Result<(Split, (usize, usize))> {
    ratios.validate()?;
    let n = perm.len();
    let (a, b) = ratios.cuts(n);
    let empty = |set, hint| DataError::EmptySet {
        set,
        n,
        train: ratios.train,
        train_val: ratios.train_val,
        hint,
    };
    if a == 0 {
        return Err(empty("train", "raise --train-ratio or use more data"));
    }
    if b == a && !ratios.no_val() {
        return Err(empty(
            "validation",
            "raise --train-val-ratio, or set it equal to --train-ratio to train without validation",
        ));
    }
    if b == n && !ratios.no_test() {
        return Err(empty(
            "test",
            "lower --train-val-ratio, or set it to 1 to train without a test set",
        ));
    }
    let sorted = |s: &[usize]| {
        let mut v = s.to_vec();
        v.sort_unstable();
        v
    };
    Ok((
        Split {
            train: sorted(&perm[..a]),
            val: sorted(&perm[a..b]),
            test: sorted(&perm[b..]),
        },
        (a, b),
    ))
}
