//! Least-squares linear mapping of predictions onto the MOS scale.

use serde::{Deserialize, Serialize};

use super::{
    check_finite, check_not_constant, check_pair, max_abs, mean, sum, MetricsError, PRED_MOS,
};

/// Linear mapping `y ≈ k·ŷ + b` of predictions `ŷ` onto the MOS scale.
///
/// [`LinearMap::fit`] gives the least-squares solution of Norm-in-Norm
/// (Li et al., ACM MM 2020) eq. (17), `min_{k,b} Σᵢ (k·ŷᵢ + b − yᵢ)²`:
/// `k = Σ(ŷᵢ−ȳ̂)(yᵢ−ȳ) / Σ(ŷᵢ−ȳ̂)²`, `b = ȳ − k·ȳ̂`
/// (the reference code solves the same normal equations in matrix form).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinearMap {
    pub k: f64,
    pub b: f64,
}

impl Default for LinearMap {
    /// The identity mapping (`k = 1`, `b = 0`).
    fn default() -> Self {
        Self { k: 1.0, b: 0.0 }
    }
}

impl LinearMap {
    /// Least-squares fit of `mos ≈ k·pred + b`.
    ///
    /// Errors if lengths differ, n < 2, a value is non-finite, or all
    /// predictions are equal (then `k` is undefined).
    pub fn fit(pred: &[f64], mos: &[f64]) -> Result<Self, MetricsError> {
        const WHAT: &str = "the least-squares mapping (k)";
        check_pair(pred, mos, PRED_MOS, 2)?;
        check_not_constant(pred, "pred", WHAT)?;
        let (mx, my) = (mean(pred), mean(mos));
        let dx: Vec<f64> = pred.iter().map(|&v| v - mx).collect();
        // Scale the deviations to avoid overflow/underflow in Σdx².
        let s = max_abs(&dx);
        let sxx = sum(dx.iter().map(|v| (v / s) * (v / s)));
        let sxy = sum(dx.iter().zip(mos).map(|(v, &y)| (v / s) * (y - my)));
        let k = sxy / sxx / s;
        let b = my - k * mx;
        if sxx == 0.0 || !k.is_finite() || !b.is_finite() {
            return Err(MetricsError::ConstantInput {
                input: "pred",
                statistic: WHAT,
            });
        }
        Ok(Self { k, b })
    }

    /// Maps one prediction: `k·x + b`.
    pub fn apply_one(&self, x: f64) -> f64 {
        self.k * x + self.b
    }

    /// Maps every prediction: `k·ŷᵢ + b`.
    pub fn apply(&self, pred: &[f64]) -> Vec<f64> {
        pred.iter().map(|&x| self.apply_one(x)).collect()
    }

    /// Checked [`LinearMap::apply`]: errors on non-finite input or output.
    pub fn try_apply(&self, pred: &[f64]) -> Result<Vec<f64>, MetricsError> {
        check_finite(pred, "pred")?;
        let out = self.apply(pred);
        check_finite(&out, "mapped pred")?;
        Ok(out)
    }
}
