//! IQA evaluation metrics (f64): SROCC, PLCC, KROCC, RMSE, the least-squares
//! linear mapping of predictions onto the MOS scale, and the paired t-test.
//!
//! Definitions follow the usual VQEG / IQA practice and the reference
//! implementation of LinearityIQA (`IQAPerformance`): correlations are computed
//! between (optionally linearly mapped) predictions and MOS.
//!
//! - [`srocc`]: Spearman rank-order correlation, average ranks on ties
//!   (as `scipy.stats.spearmanr`).
//! - [`plcc`]: Pearson linear correlation (as `scipy.stats.pearsonr`).
//! - [`krocc`]: Kendall rank-order correlation, tau-b, O(n log n)
//!   (as `scipy.stats.kendalltau` with its defaults).
//! - [`rmse`]: root mean squared error.
//! - [`LinearMap`]: least-squares `k`, `b` of Norm-in-Norm eq. (17).
//! - [`Metrics`]: all four on mapped predictions, like `IQAPerformance`.
//! - [`paired_t_test`]: paired Student t-test (as `scipy.stats.ttest_rel`).
//! - [`MeanStd`]: mean ± sample std of a table cell over seeds or splits (NaN-tolerant).
//! - [`fit_logistic`]: the VQEG 4- and 5-parameter logistic mappings before PLCC/RMSE.
//!
//! Every public function validates its input and returns [`MetricsError`]
//! instead of NaN: unequal lengths, too few samples, non-finite values, and
//! constant input where the statistic is undefined.
//!
//! ```
//! use normiqa_core::metrics::{paired_t_test, srocc, LinearMap, Metrics};
//!
//! let pred = [0.1, 0.4, 0.35, 0.8, 0.9];
//! let mos = [1.2, 2.0, 2.4, 3.9, 4.5];
//! assert!((srocc(&pred, &mos)? - 0.9).abs() < 1e-12); // one swapped pair
//! // Fit k, b on training data; evaluate test data with the same mapping.
//! let (train, map) = Metrics::fit_compute(&pred, &mos)?;
//! let test = Metrics::compute_mapped(&[0.2, 0.7, 0.5], &[1.5, 3.1, 2.9], Some(&map))?;
//! assert!(train.plcc > 0.9 && test.n == 3);
//! assert!(LinearMap::fit(&[0.5, 0.5], &[1.0, 2.0]).is_err()); // constant predictions
//! // Two losses' test SROCC over the same splits.
//! let t = paired_t_test(&[0.91, 0.92, 0.90, 0.93], &[0.90, 0.90, 0.89, 0.91])?;
//! assert!(t.t > 0.0 && t.p_two_sided < 0.05);
//! # Ok::<(), normiqa_core::metrics::MetricsError>(())
//! ```

mod correlation;
mod logistic;
mod mapping;
mod summary;
mod ttest;

pub use correlation::{average_ranks, krocc, plcc, rmse, srocc};
pub use logistic::{fit_logistic, Logistic, LogisticFit};
pub use mapping::LinearMap;
pub use summary::MeanStd;
pub use ttest::{paired_t_test, TTest};

use serde::{Deserialize, Serialize};

/// Errors from metric computations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The two inputs have different lengths.
    #[error("length mismatch: {left_name} has {left} values but {right_name} has {right}")]
    LengthMismatch {
        left_name: &'static str,
        left: usize,
        right_name: &'static str,
        right: usize,
    },
    /// Fewer samples than the statistic needs.
    #[error("too few samples: got {n}, need at least {min}")]
    TooFewSamples { n: usize, min: usize },
    /// A NaN or infinite value.
    #[error("non-finite value {value} at index {index} of {input}")]
    NonFinite {
        input: &'static str,
        index: usize,
        value: f64,
    },
    /// All values of an input are equal, so the statistic is undefined.
    #[error("{input} is constant (all values equal), so {statistic} is undefined")]
    ConstantInput {
        input: &'static str,
        statistic: &'static str,
    },
}

/// Names of the two arguments, used in error messages.
type Names = (&'static str, &'static str);
const PRED_MOS: Names = ("pred", "mos");

/// Checks equal lengths, at least `min` samples and finiteness of both inputs.
fn check_pair(x: &[f64], y: &[f64], names: Names, min: usize) -> Result<(), MetricsError> {
    if x.len() != y.len() {
        return Err(MetricsError::LengthMismatch {
            left_name: names.0,
            left: x.len(),
            right_name: names.1,
            right: y.len(),
        });
    }
    if x.len() < min {
        return Err(MetricsError::TooFewSamples { n: x.len(), min });
    }
    check_finite(x, names.0)?;
    check_finite(y, names.1)
}

fn check_finite(x: &[f64], input: &'static str) -> Result<(), MetricsError> {
    match x.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(MetricsError::NonFinite {
            input,
            index,
            value: x[index],
        }),
        None => Ok(()),
    }
}

/// Errors with [`MetricsError::ConstantInput`] if all values of `x` are equal.
fn check_not_constant(
    x: &[f64],
    input: &'static str,
    statistic: &'static str,
) -> Result<(), MetricsError> {
    match x.first() {
        Some(&x0) if x.iter().all(|&v| v == x0) => {
            Err(MetricsError::ConstantInput { input, statistic })
        }
        _ => Ok(()),
    }
}

/// Neumaier-compensated sum.
fn sum(xs: impl IntoIterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for x in xs {
        let t = s + x;
        if s.abs() >= x.abs() {
            c += (s - t) + x;
        } else {
            c += (x - t) + s;
        }
        s = t;
    }
    s + c
}

/// Arithmetic mean of finite values, without overflow for huge magnitudes.
fn mean(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let s = sum(x.iter().copied());
    if s.is_finite() {
        s / n
    } else {
        sum(x.iter().map(|&v| v / n))
    }
}

/// Largest absolute value (0 for empty input).
fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, &v| m.max(v.abs()))
}

/// The four IQA criteria on one set of predictions, as reported in the
/// LinearityIQA / Norm-in-Norm papers.
///
/// Mirrors the reference `IQAPerformance`: all four are computed between MOS
/// and the *mapped* predictions `k·ŷ + b`, so RMSE is on the MOS scale only
/// when a mapping is used.
///
/// JSON has no NaN: serde_json writes an undefined metric as `null`, which reads back as NaN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(deserialize_with = "f64_or_nan")]
    pub srocc: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub plcc: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub krocc: f64,
    #[serde(deserialize_with = "f64_or_nan")]
    pub rmse: f64,
    /// Number of samples.
    pub n: usize,
}

/// Deserialises a number, or `null` (how serde_json writes NaN) as NaN.
pub fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Metrics {
    /// Fits [`LinearMap`] on `(pred, mos)` and evaluates the mapped predictions
    /// (reference `IQAPerformance` with `status='train', mapping=True`).
    pub fn compute(pred: &[f64], mos: &[f64]) -> Result<Self, MetricsError> {
        Self::fit_compute(pred, mos).map(|(m, _)| m)
    }

    /// Like [`Metrics::compute`], also returning the fitted mapping so it can be
    /// reused on test data with [`Metrics::compute_mapped`].
    pub fn fit_compute(pred: &[f64], mos: &[f64]) -> Result<(Self, LinearMap), MetricsError> {
        let map = LinearMap::fit(pred, mos)?;
        Ok((Self::compute_mapped(pred, mos, Some(&map))?, map))
    }

    /// [`Metrics::compute_mapped`], except that SROCC and KROCC are those of `pred` as given: a
    /// mapping never changes rank correlations (with `k < 0` the reference's would flip their
    /// sign, reporting an anti-correlated predictor as correlated). PLCC and RMSE are those of
    /// the mapped predictions. `normiqa metrics` reports these.
    pub fn compute_keeping_ranks(
        pred: &[f64],
        mos: &[f64],
        map: Option<&LinearMap>,
    ) -> Result<Self, MetricsError> {
        let mapped = Self::compute_mapped(pred, mos, map)?;
        Ok(Self {
            srocc: srocc(pred, mos)?,
            krocc: krocc(pred, mos)?,
            ..mapped
        })
    }

    /// Evaluates `map.apply(pred)` against `mos` (reference `status='test'`),
    /// or the raw predictions if `map` is `None` (reference `mapping=False`).
    ///
    /// Note: SROCC/KROCC change sign if `map.k < 0`, as in the reference.
    pub fn compute_mapped(
        pred: &[f64],
        mos: &[f64],
        map: Option<&LinearMap>,
    ) -> Result<Self, MetricsError> {
        check_pair(pred, mos, PRED_MOS, 2)?;
        let mapped;
        let p = match map {
            Some(m) => {
                mapped = m.apply(pred);
                check_finite(&mapped, "mapped pred")?;
                &mapped[..]
            }
            None => pred,
        };
        Ok(Self {
            srocc: srocc(p, mos)?,
            plcc: plcc(p, mos)?,
            krocc: krocc(p, mos)?,
            rmse: rmse(p, mos)?,
            n: pred.len(),
        })
    }
}
