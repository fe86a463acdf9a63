//! Nonlinear (logistic) mappings of predictions onto the MOS scale before PLCC and RMSE, as the
//! VQEG recommends and most IQA papers (and pyiqa's `calculate_plcc(.., fit_scale=..)`) report:
//!
//! - 4 parameters: `f(x) = (β1 − β2) / (1 + exp(−(x − β3) / β4)) + β2`;
//! - 5 parameters (Sheikh et al. 2006; DBCNN's `verify_performance.m`):
//!   `f(x) = β1 (1/2 − 1/(1 + exp(β2 (x − β3)))) + β4 x + β5`.
//!
//! The parameters are fitted by least squares on the data being evaluated, with pyiqa's starting
//! points (4: `[max y, min y, mean x, std x / 4]`; 5: `[10, 0, mean y, 0.1, 0.1]`), by a
//! Levenberg–Marquardt iteration (Marquardt's diagonal scaling, analytic Jacobian), the method
//! behind `scipy.optimize.curve_fit` (MINPACK `lmdif`).

use serde::{Deserialize, Serialize};

use super::{check_pair, plcc, rmse, MetricsError, PRED_MOS};

/// Which curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Logistic {
    Logistic4,
    Logistic5,
}

impl Logistic {
    pub const ALL: [Logistic; 2] = [Logistic::Logistic4, Logistic::Logistic5];

    pub fn name(&self) -> &'static str {
        match self {
            Logistic::Logistic4 => "logistic4",
            Logistic::Logistic5 => "logistic5",
        }
    }

    fn n_params(&self) -> usize {
        match self {
            Logistic::Logistic4 => 4,
            Logistic::Logistic5 => 5,
        }
    }

    /// pyiqa's starting point.
    fn start(&self, x: &[f64], y: &[f64]) -> Vec<f64> {
        let n = x.len() as f64;
        let mx = x.iter().sum::<f64>() / n;
        let my = y.iter().sum::<f64>() / n;
        match self {
            Logistic::Logistic4 => {
                let sx = (x.iter().map(|v| (v - mx).powi(2)).sum::<f64>() / n).sqrt();
                let ymax = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let ymin = y.iter().cloned().fold(f64::INFINITY, f64::min);
                vec![ymax, ymin, mx, sx / 4.0]
            }
            Logistic::Logistic5 => vec![10.0, 0.0, my, 0.1, 0.1],
        }
    }

    /// `f(x)` and its gradient with respect to the parameters.
    fn eval(&self, p: &[f64], x: f64, grad: &mut [f64]) -> f64 {
        match self {
            Logistic::Logistic4 => {
                let s = sigmoid((x - p[2]) / p[3]);
                let ds = s * (1.0 - s);
                grad[0] = s;
                grad[1] = 1.0 - s;
                grad[2] = -(p[0] - p[1]) * ds / p[3];
                grad[3] = -(p[0] - p[1]) * ds * (x - p[2]) / (p[3] * p[3]);
                (p[0] - p[1]) * s + p[1]
            }
            Logistic::Logistic5 => {
                // 1/2 − 1/(1 + e^{z}) = σ(z) − 1/2 with z = β2 (x − β3)
                let s = sigmoid(p[1] * (x - p[2]));
                let ds = s * (1.0 - s);
                grad[0] = s - 0.5;
                grad[1] = p[0] * ds * (x - p[2]);
                grad[2] = -p[0] * ds * p[1];
                grad[3] = x;
                grad[4] = 1.0;
                p[0] * (s - 0.5) + p[3] * x + p[4]
            }
        }
    }

    /// Applies the curve with parameters `p`.
    pub fn apply(&self, p: &[f64], x: &[f64]) -> Vec<f64> {
        let mut g = vec![0.0; self.n_params()];
        x.iter().map(|&v| self.eval(p, v, &mut g)).collect()
    }
}

impl std::str::FromStr for Logistic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "logistic4" | "4" => Ok(Logistic::Logistic4),
            "logistic5" | "5" => Ok(Logistic::Logistic5),
            _ => Err(format!("unknown logistic '{s}' (expected logistic4 or logistic5)")),
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// A fitted curve and the criteria of the mapped predictions against MOS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticFit {
    pub curve: Logistic,
    /// β1.. of the curve.
    pub params: Vec<f64>,
    /// PLCC and RMSE between `f(pred)` and MOS.
    pub plcc: f64,
    pub rmse: f64,
    pub iterations: usize,
}

/// Least-squares fit of `curve` to `(pred, mos)`, then PLCC and RMSE of the mapped predictions.
/// Needs more points than parameters and non-constant predictions.
pub fn fit_logistic(curve: Logistic, pred: &[f64], mos: &[f64]) -> Result<LogisticFit, MetricsError> {
    let k = curve.n_params();
    check_pair(pred, mos, PRED_MOS, k + 1)?;
    super::check_not_constant(pred, "pred", "a logistic mapping")?;
    let (params, iterations) = levenberg_marquardt(curve, pred, mos, curve.start(pred, mos));
    let mapped = curve.apply(&params, pred);
    if mapped.iter().any(|v| !v.is_finite()) {
        return Err(MetricsError::ConstantInput {
            input: "pred",
            statistic: "a logistic mapping (the fit diverged)",
        });
    }
    Ok(LogisticFit {
        curve,
        plcc: plcc(&mapped, mos)?,
        rmse: rmse(&mapped, mos)?,
        params,
        iterations,
    })
}

fn sse(curve: Logistic, p: &[f64], x: &[f64], y: &[f64]) -> f64 {
    let f = curve.apply(p, x);
    f.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// Minimises Σ (f(xᵢ) − yᵢ)² from `p`; returns the parameters and the iterations taken.
/// Damping as MINPACK: λ·D² with D the running maximum of the Jacobian's column norms. Stops when
/// the step is below 1e-14 of the parameters or the gradient vanishes (the 5-parameter curve
/// has long flat valleys, so a small decrease of the sum of squares alone is not a stop).
fn levenberg_marquardt(curve: Logistic, x: &[f64], y: &[f64], mut p: Vec<f64>) -> (Vec<f64>, usize) {
    const MAX_ITER: usize = 100_000;
    let k = p.len();
    let mut lambda = 1e-3;
    let mut cost = sse(curve, &p, x, y);
    let mut g = vec![0.0; k];
    let mut diag = vec![0.0f64; k];
    for it in 0..MAX_ITER {
        // normal equations JᵀJ δ = Jᵀr
        let mut jtj = vec![vec![0.0; k]; k];
        let mut jtr = vec![0.0; k];
        for (&xi, &yi) in x.iter().zip(y) {
            let r = yi - curve.eval(&p, xi, &mut g);
            for a in 0..k {
                jtr[a] += g[a] * r;
                for b in 0..=a {
                    jtj[a][b] += g[a] * g[b];
                }
            }
        }
        for a in 0..k {
            for b in 0..a {
                jtj[b][a] = jtj[a][b];
            }
            diag[a] = diag[a].max(jtj[a][a].sqrt()).max(1e-150);
        }
        let gnorm = (0..k)
            .map(|a| jtr[a].abs() / (diag[a] * cost.sqrt().max(1e-300)))
            .fold(0.0, f64::max);
        if gnorm < 1e-13 {
            return (p, it);
        }
        let mut stepped = false;
        while lambda < 1e20 {
            let mut m = jtj.clone();
            for (a, row) in m.iter_mut().enumerate() {
                row[a] += lambda * diag[a] * diag[a];
            }
            let Some(delta) = solve(m, jtr.clone()) else {
                lambda *= 10.0;
                continue;
            };
            let trial: Vec<f64> = p.iter().zip(&delta).map(|(a, d)| a + d).collect();
            let tiny = delta
                .iter()
                .zip(&p)
                .all(|(d, v)| d.abs() <= 1e-14 * (v.abs() + 1e-14));
            let c = sse(curve, &trial, x, y);
            if c.is_finite() && c <= cost {
                p = trial;
                cost = c;
                lambda = (lambda / 3.0).max(1e-15);
                stepped = !tiny;
                break;
            }
            if tiny {
                break;
            }
            lambda *= 4.0;
        }
        if !stepped {
            return (p, it + 1);
        }
    }
    (p, MAX_ITER)
}

/// Gaussian elimination with partial pivoting; `None` if singular.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if !(a[piv][c].abs() > 0.0) || !a[piv][c].is_finite() {
            return None;
        }
        a.swap(c, piv);
        b.swap(c, piv);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            for k in c..n {
                a[r][k] -= f * a[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| a[c][k] * x[k]).sum();
        x[c] = (b[c] - s) / a[c][c];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}
