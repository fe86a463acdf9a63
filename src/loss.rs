//! Training losses, all in one place: the Norm-in-Norm loss of Li, Jiang & Jiang, "Norm-in-Norm
//! Loss with Faster Convergence and Better Performance for Image Quality Assessment" (ACM MM 2020),
//! the baselines MAE / MSE, and the other normalisations of the reference code (`IQAloss.py`).
//!
//! Every function takes predictions `ŷ` and MOS `y` as 1-D (or N×1) tensors of the same length
//! and returns a 0-dim tensor. A batch of one sample gives a loss of exactly 0 that is still
//! connected to the graph, as the reference does (`l1_loss(ŷ, ŷ.detach())`).

use std::fmt;
use std::str::FromStr;

use tch::{Reduction, Tensor};

/// The small constant the reference adds to norms before dividing.
pub const EPS: f64 = 1e-8;

/// Which loss, with its parameters. `Display`/`FromStr` use the CLI spelling.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LossKind {
    /// Norm-in-Norm, eqs. (1)–(6) and (15): `p, q ≥ 1`, `alpha = [a0, a1]` mixes l and l′.
    NormInNorm { p: f64, q: f64, alpha: [f64; 2] },
    /// Mean absolute error.
    Mae,
    /// Mean squared error.
    Mse,
    /// Z-score MSE of the reference ("linearity-induced"), `alpha` mixes the PLCC and R² forms.
    Linearity { alpha: [f64; 2] },
    /// MSE after min-max normalisation of both vectors.
    MinMaxNorm { alpha: [f64; 2] },
    /// MSE after mean normalisation (centre, divide by the range).
    MeanNorm { alpha: [f64; 2] },
    /// MSE after dividing each vector by its L^p norm (no centring).
    Scaling { p: f64, alpha: [f64; 2] },
}

impl Default for LossKind {
    /// The reference's default: Norm-in-Norm with p = 1, q = 2, alpha = [1, 0].
    fn default() -> Self {
        LossKind::NormInNorm {
            p: 1.0,
            q: 2.0,
            alpha: [1.0, 0.0],
        }
    }
}

impl LossKind {
    /// True for losses that normalise the MOS of a batch (a batch of equal MOS teaches them
    /// nothing).
    pub fn normalises_targets(&self) -> bool {
        !matches!(self, LossKind::Mae | LossKind::Mse)
    }

    /// Short name used in run names and tables: `norm-in-norm`, `mae`, `mse`, ...
    pub fn name(&self) -> &'static str {
        match self {
            LossKind::NormInNorm { .. } => "norm-in-norm",
            LossKind::Mae => "mae",
            LossKind::Mse => "mse",
            LossKind::Linearity { .. } => "linearity",
            LossKind::MinMaxNorm { .. } => "min-max-norm",
            LossKind::MeanNorm { .. } => "mean-norm",
            LossKind::Scaling { .. } => "scaling",
        }
    }

    /// Builds a loss from its name and the shared options `p`, `q`, `alpha`.
    pub fn from_parts(name: &str, p: f64, q: f64, alpha: [f64; 2]) -> Result<Self, LossError> {
        let kind = match name {
            "norm-in-norm" | "nin" | "Lp" => LossKind::NormInNorm { p, q, alpha },
            "mae" | "l1" => LossKind::Mae,
            "mse" => LossKind::Mse,
            "linearity" => LossKind::Linearity { alpha },
            "min-max-norm" => LossKind::MinMaxNorm { alpha },
            "mean-norm" => LossKind::MeanNorm { alpha },
            "scaling" => LossKind::Scaling { p, alpha },
            other => return Err(LossError::UnknownLoss(other.to_string())),
        };
        kind.validate()?;
        Ok(kind)
    }

    /// Checks the parameters: p, q ≥ 1 and alpha non-negative with a positive sum.
    pub fn validate(&self) -> Result<(), LossError> {
        let check_alpha = |a: &[f64; 2]| {
            if a.iter().any(|&v| !(v >= 0.0)) || a[0] + a[1] <= 0.0 {
                Err(LossError::BadOption(format!(
                    "--alpha {} {}: both must be >= 0 with a positive sum",
                    a[0], a[1]
                )))
            } else {
                Ok(())
            }
        };
        match self {
            LossKind::NormInNorm { p, q, alpha } => {
                if !(*p >= 1.0) || !(*q >= 1.0) {
                    return Err(LossError::BadOption(format!(
                        "--p {p} --q {q}: Norm-in-Norm needs p >= 1 and q >= 1"
                    )));
                }
                check_alpha(alpha)
            }
            LossKind::Scaling { p, alpha } => {
                if !(*p >= 1.0) {
                    return Err(LossError::BadOption(format!("--p {p}: needs p >= 1")));
                }
                check_alpha(alpha)
            }
            LossKind::Linearity { alpha }
            | LossKind::MinMaxNorm { alpha }
            | LossKind::MeanNorm { alpha } => check_alpha(alpha),
            LossKind::Mae | LossKind::Mse => Ok(()),
        }
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossKind::NormInNorm { p, q, alpha } => {
                write!(
                    f,
                    "norm-in-norm(p={p},q={q},alpha=[{},{}])",
                    alpha[0], alpha[1]
                )
            }
            LossKind::Scaling { p, alpha } => {
                write!(f, "scaling(p={p},alpha=[{},{}])", alpha[0], alpha[1])
            }
            LossKind::Linearity { alpha }
            | LossKind::MinMaxNorm { alpha }
            | LossKind::MeanNorm { alpha } => {
                write!(f, "{}(alpha=[{},{}])", self.name(), alpha[0], alpha[1])
            }
            LossKind::Mae | LossKind::Mse => write!(f, "{}", self.name()),
        }
    }
}

impl FromStr for LossKind {
    type Err = LossError;
    /// Parses a bare name with the reference defaults (p = 1, q = 2, alpha = [1, 0]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LossKind::from_parts(s, 1.0, 2.0, [1.0, 0.0])
    }
}

/// A loss with the reference's extra switches.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossConfig {
    pub kind: LossKind,
    /// Compute the prediction statistics (mean, norm) without gradient (`--detach`).
    #[serde(default)]
    pub detach: bool,
    /// Weight γ of the monotonicity (ranking) regulariser; `None` disables it.
    #[serde(default)]
    pub monotonicity: Option<f64>,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            kind: LossKind::default(),
            detach: false,
            monotonicity: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LossError {
    #[error("unknown loss '{0}' (expected norm-in-norm, mae, mse, linearity, min-max-norm, mean-norm, scaling)")]
    UnknownLoss(String),
    #[error("{0}")]
    BadOption(String),
    #[error("predictions have {pred} values but the MOS has {mos}")]
    LengthMismatch { pred: i64, mos: i64 },
}

impl LossConfig {
    /// The loss of one head, eq. (6) (or the chosen alternative), plus γ·monotonicity if enabled.
    ///
    /// A batch whose MOS are all equal is no error: as in the reference, the centred MOS are 0
    /// and the ε added to their norm keeps the normalised MOS at 0, so Norm-in-Norm gives
    /// ‖Ŝ‖_p^p / c (the trainer counts such batches: `train/constant_mos.rs`).
    pub fn compute(&self, pred: &Tensor, mos: &Tensor) -> Result<Tensor, LossError> {
        let pred = pred.reshape([-1]);
        let mos = mos.reshape([-1]).to_kind(pred.kind());
        let (n, m) = (pred.size()[0], mos.size()[0]);
        if n != m {
            return Err(LossError::LengthMismatch { pred: n, mos: m });
        }
        let d = self.detach;
        let mut loss = match self.kind {
            LossKind::NormInNorm { p, q, alpha } => norm_in_norm(&pred, &mos, p, q, alpha, d),
            LossKind::Mae => (&pred - &mos).abs().mean(pred.kind()),
            LossKind::Mse => pred.mse_loss(&mos, Reduction::Mean),
            LossKind::Linearity { alpha } => linearity(&pred, &mos, alpha, d),
            LossKind::MinMaxNorm { alpha } => min_max_norm(&pred, &mos, alpha, d),
            LossKind::MeanNorm { alpha } => mean_norm(&pred, &mos, alpha, d),
            LossKind::Scaling { p, alpha } => scaling(&pred, &mos, p, alpha, d),
        };
        if let Some(gamma) = self.monotonicity {
            loss = loss + monotonicity(&pred, &mos, d) * gamma;
        }
        Ok(loss)
    }
}

/// The loss of a batch of one: 0, connected to the graph.
fn zero_like(pred: &Tensor) -> Tensor {
    pred.sum(pred.kind()) * 0.0
}

fn maybe_detach(t: &Tensor, detach: bool) -> Tensor {
    if detach {
        t.detach()
    } else {
        t.shallow_clone()
    }
}

/// ‖x‖_p = (Σ|xᵢ|^p)^(1/p), as the reference's `torch.norm(x, p)`: libtorch's norm, whose
/// gradient at the zero vector is 0 (`(Σxᵢ²)^½` written out would give 0·∞ = NaN there, e.g.
/// for equal predictions in a batch).
pub fn lp_norm(x: &Tensor, p: f64) -> Tensor {
    x.norm_scalaropt_dtype(p, x.kind())
}

/// Eqs. (1)–(2): centre and divide by the L^q norm of the centred values (ε added as the
/// reference does). Returns the normalised vector and the norm b̂ (or b for the MOS).
pub fn normalize(x: &Tensor, q: f64, detach_stats: bool) -> (Tensor, Tensor) {
    let m = maybe_detach(&x.mean(x.kind()), detach_stats);
    let centred = x - m;
    let norm = maybe_detach(&lp_norm(&centred, q), detach_stats);
    let out = &centred / (&norm + EPS);
    (out, norm)
}

/// The normalising constant c of eq. (6): 2^p·N^(1−p/q) if p < q, else 2^p. It makes 0 ≤ l ≤ 1.
pub fn norm_in_norm_scale(p: f64, q: f64, n: i64) -> f64 {
    if p < q {
        2f64.powf(p) * (n as f64).powf(1.0 - p / q)
    } else {
        2f64.powf(p)
    }
}

/// Norm-in-Norm loss, eqs. (1)–(6): with Ŝ, S the normalised predictions and MOS,
/// l = ‖Ŝ − S‖_p^p / c. The variant of eq. (15), l′ = ‖ρ·Ŝ − S‖_p^p / c with ρ = PLCC (the cosine
/// of the centred vectors), is mixed in as (a0·l + a1·l′)/(a0 + a1).
/// With p = q = 2, l = (1 − ρ)/2 (eq. 14).
pub fn norm_in_norm(
    pred: &Tensor,
    mos: &Tensor,
    p: f64,
    q: f64,
    alpha: [f64; 2],
    detach: bool,
) -> Tensor {
    let n = pred.size()[0];
    if n < 2 {
        return zero_like(pred);
    }
    let (s_hat, _) = normalize(pred, q, detach);
    let (s, _) = normalize(mos, q, false);
    let c = norm_in_norm_scale(p, q, n);
    let term = |err: Tensor| err.abs().pow_tensor_scalar(p).sum(err.kind()) / c;
    let mut total = zero_like(pred);
    if alpha[0] > 0.0 {
        total = total + term(&s_hat - &s) * alpha[0];
    }
    if alpha[1] > 0.0 {
        let rho = cosine(&s_hat, &s);
        total = total + term(&s_hat * rho - &s) * alpha[1];
    }
    total / (alpha[0] + alpha[1])
}

/// cos(a, b) as torch.cosine_similarity (norms clamped at 1e-8).
fn cosine(a: &Tensor, b: &Tensor) -> Tensor {
    let dot = (a * b).sum(a.kind());
    let na = lp_norm(a, 2.0).clamp_min(1e-8);
    let nb = lp_norm(b, 2.0).clamp_min(1e-8);
    dot / (na * nb)
}

/// MSE between a normalised prediction and target, and its ρ-scaled variant, mixed by alpha and
/// divided by `scale` (the shape shared by the reference's min-max, mean and scaling losses).
fn mixed_mse(s_hat: &Tensor, s: &Tensor, alpha: [f64; 2], scale: f64) -> Tensor {
    let mut total = zero_like(s_hat);
    if alpha[0] > 0.0 {
        total = total + s_hat.mse_loss(s, Reduction::Mean) / scale * alpha[0];
    }
    if alpha[1] > 0.0 {
        let rho = cosine(s_hat, s);
        total = total + (s_hat * rho).mse_loss(s, Reduction::Mean) / scale * alpha[1];
    }
    total / (alpha[0] + alpha[1])
}

/// The reference's "linearity-induced" loss: MSE between z-scores / 4 (≈ (1 − ρ)/2), with the
/// R² form `mean((ρ·ŷz − yz)²)/4` mixed in by alpha[1] (ρ = mean(ŷz·yz) here).
pub fn linearity(pred: &Tensor, mos: &Tensor, alpha: [f64; 2], detach: bool) -> Tensor {
    if pred.size()[0] < 2 {
        return zero_like(pred);
    }
    let zscore = |x: &Tensor, det: bool| {
        let m = maybe_detach(&x.mean(x.kind()), det);
        let sd = maybe_detach(&x.std(false), det);
        (x - m) / (sd + EPS)
    };
    let zp = zscore(pred, detach);
    let zy = zscore(mos, false);
    let mut total = zero_like(pred);
    if alpha[0] > 0.0 {
        total = total + zp.mse_loss(&zy, Reduction::Mean) / 4.0 * alpha[0];
    }
    if alpha[1] > 0.0 {
        let rho = (&zp * &zy).mean(zp.kind());
        total = total + (&zp * rho).mse_loss(&zy, Reduction::Mean) / 4.0 * alpha[1];
    }
    total / (alpha[0] + alpha[1])
}

/// MSE after min-max normalisation to [0, 1].
pub fn min_max_norm(pred: &Tensor, mos: &Tensor, alpha: [f64; 2], detach: bool) -> Tensor {
    if pred.size()[0] < 2 {
        return zero_like(pred);
    }
    let (lo, hi) = (
        maybe_detach(&pred.min(), detach),
        maybe_detach(&pred.max(), detach),
    );
    let s_hat = (pred - &lo) / (hi - &lo + EPS);
    let s = (mos - mos.min()) / (mos.max() - mos.min() + EPS);
    mixed_mse(&s_hat, &s, alpha, 1.0)
}

/// MSE/4 after mean normalisation: (x − mean)/(max − min).
pub fn mean_norm(pred: &Tensor, mos: &Tensor, alpha: [f64; 2], detach: bool) -> Tensor {
    if pred.size()[0] < 2 {
        return zero_like(pred);
    }
    let mean = maybe_detach(&pred.mean(pred.kind()), detach);
    let range = maybe_detach(&(pred.max() - pred.min()), detach);
    let s_hat = (pred - mean) / (range + EPS);
    let s = (mos - mos.mean(mos.kind())) / (mos.max() - mos.min() + EPS);
    mixed_mse(&s_hat, &s, alpha, 4.0)
}

/// MSE/4 after dividing by the L^p norm, without centring.
pub fn scaling(pred: &Tensor, mos: &Tensor, p: f64, alpha: [f64; 2], detach: bool) -> Tensor {
    if pred.size()[0] < 2 {
        return zero_like(pred);
    }
    let s_hat = pred / (maybe_detach(&lp_norm(pred, p), detach) + EPS);
    let s = mos / (lp_norm(mos, p) + EPS);
    mixed_mse(&s_hat, &s, alpha, 4.0)
}

/// The reference's monotonicity regulariser: mean over ordered pairs of relu((ŷᵢ − ŷⱼ)·sign(yⱼ − yᵢ)),
/// divided by 1 + its largest term.
pub fn monotonicity(pred: &Tensor, mos: &Tensor, detach: bool) -> Tensor {
    let n = pred.size()[0];
    if n < 2 {
        return zero_like(pred);
    }
    let p = pred.reshape([-1, 1]);
    let y = mos.reshape([-1, 1]);
    let ranking = ((&p - p.transpose(0, 1)) * (y.transpose(0, 1) - &y).sign()).relu();
    let scale = maybe_detach(&ranking.max(), detach) + 1.0;
    ranking.sum(pred.kind()) / (n * (n - 1)) as f64 / scale
}

/// b̂ of the paper's supplementary B: the L^q norm of the centred predictions of a batch.
pub fn bhat(pred: &Tensor, q: f64) -> f64 {
    tch::no_grad(|| {
        let x = pred.reshape([-1]);
        f64::try_from(lp_norm(&(&x - x.mean(x.kind())), q)).unwrap_or(f64::NAN)
    })
}

/// Total loss of LinearityIQA's three heads (the reference's `IQALoss.forward`):
/// β₀·loss(head6) + β₁·loss(head7) + β₂·loss(fused). Heads with β = 0 are skipped.
pub fn multi_head(
    cfg: &LossConfig,
    beta: [f64; 3],
    heads: &[Tensor; 3],
    mos: &Tensor,
) -> Result<Tensor, LossError> {
    let mut total: Option<Tensor> = None;
    for (b, h) in beta.iter().zip(heads.iter()) {
        if *b > 0.0 {
            let l = cfg.compute(h, mos)? * *b;
            total = Some(match total {
                None => l,
                Some(t) => t + l,
            });
        }
    }
    Ok(total.unwrap_or_else(|| zero_like(&heads[2])))
}
