//! Paired Student t-test.

use serde::{Deserialize, Serialize};
use statrs::function::beta::beta_reg;

use super::{check_finite, check_pair, mean, sum, MetricsError};

/// Result of [`paired_t_test`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TTest {
    /// `t = d̄ / (s_d / √n)`.
    pub t: f64,
    /// Degrees of freedom `n − 1`.
    pub df: f64,
    /// Two-sided p-value `P(|T_df| ≥ |t|)`.
    pub p_two_sided: f64,
    /// `d̄ = mean(a − b)`.
    pub mean_diff: f64,
}

/// Paired (dependent-samples) t-test of `H₀: mean(a − b) = 0`, as
/// `scipy.stats.ttest_rel(a, b)`: with `dᵢ = aᵢ − bᵢ`, `s_d` the sample
/// standard deviation (ddof = 1), `t = d̄ / (s_d/√n)`, `df = n − 1`,
/// `p = 2·P(T_df > |t|) = I_{df/(df+t²)}(df/2, 1/2)` (regularized incomplete beta).
///
/// Used e.g. to compare two losses over the same 10 train/test splits.
/// Needs n ≥ 2. If all differences are equal and non-zero, `t = ±∞`, `p = 0`
/// (as scipy); if `a == b` element-wise, errors (`t = 0/0`).
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Result<TTest, MetricsError> {
    check_pair(a, b, ("a", "b"), 2)?;
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    check_finite(&d, "a - b")?;
    let n = d.len() as f64;
    let df = n - 1.0;
    let mean_diff = mean(&d);
    let var = sum(d.iter().map(|v| (v - mean_diff) * (v - mean_diff))) / df;
    if var == 0.0 && mean_diff == 0.0 {
        return Err(MetricsError::ConstantInput {
            input: "a - b",
            statistic: "the paired t statistic (all differences are 0)",
        });
    }
    let t = if var == 0.0 {
        mean_diff.signum() * f64::INFINITY
    } else {
        mean_diff / (var.sqrt() / n.sqrt())
    };
    let x = df / (df + t * t);
    let p_two_sided = if x.is_nan() || x <= 0.0 {
        0.0
    } else {
        beta_reg(df / 2.0, 0.5, x.min(1.0))
    };
    Ok(TTest {
        t,
        df,
        p_two_sided,
        mean_diff,
    })
}
