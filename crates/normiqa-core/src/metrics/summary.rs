//! Summary statistics of tables (mean ± std over seeds or splits): one rule for every table
//! (experiments, MRKD).

use serde::{Deserialize, Serialize};

/// Mean, sample standard deviation (n − 1) and count of the finite values. The standard
/// deviation of fewer than two values is undefined: NaN (written `null` in JSON, `–` in tables).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    #[serde(deserialize_with = "super::f64_or_nan")]
    pub mean: f64,
    #[serde(deserialize_with = "super::f64_or_nan")]
    pub std: f64,
    pub n: usize,
}

impl MeanStd {
    pub fn of(v: &[f64]) -> MeanStd {
        let x: Vec<f64> = v.iter().copied().filter(|a| a.is_finite()).collect();
        let n = x.len();
        let mean = match n {
            0 => f64::NAN,
            _ => x.iter().sum::<f64>() / n as f64,
        };
        let std = match n {
            0 | 1 => f64::NAN,
            _ => (x.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt(),
        };
        MeanStd { mean, std, n }
    }

    /// `mean ± std` with four decimals; `n/a` without values, `mean (n = 1)` for one.
    pub fn fmt(&self) -> String {
        match self.n {
            0 => "n/a".into(),
            1 => format!("{:.4} (n = 1)", self.mean),
            _ => format!("{:.4} ± {:.4}", self.mean, self.std),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_the_std() {
        let two = MeanStd::of(&[1.0, 3.0, f64::NAN]);
        assert_eq!((two.mean, two.n), (2.0, 2));
        assert!((two.std - 2f64.sqrt()).abs() < 1e-12);
        let one = MeanStd::of(&[0.5]);
        assert!(one.std.is_nan(), "the std of one value is undefined");
        assert_eq!(one.fmt(), "0.5000 (n = 1)");
        // NaN goes through JSON as null and back.
        let back: MeanStd = serde_json::from_str(&serde_json::to_string(&one).unwrap()).unwrap();
        assert!(back.std.is_nan() && back.mean == 0.5);
        assert_eq!(MeanStd::of(&[]).fmt(), "n/a");
    }
}
