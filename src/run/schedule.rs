//! Learning-rate schedules. tch has no schedulers: the trainer sets each group's rate every epoch
//! (or step) from these functions.

use serde::{Deserialize, Serialize};

/// The reference's StepLR rule (`main.py`): the rate is multiplied by `lr_decay` every
/// `step` epochs, with `step = ⌊epochs / (1 + ln(overall_lr_decay)/ln(lr_decay))⌋` so that the
/// total decay over the run is `overall_lr_decay` (30 epochs, 0.1, 0.01 → step 10); no decay when
/// `lr_decay == 1` or `epochs < 3`.
pub fn step_size(epochs: usize, lr_decay: f64, overall_lr_decay: f64) -> usize {
    if lr_decay == 1.0 || epochs < 3 {
        epochs.max(1)
    } else {
        ((epochs as f64) / (1.0 + overall_lr_decay.ln() / lr_decay.ln()))
            .floor()
            .max(1.0) as usize
    }
}

/// Multiplier of the base rate for 0-based `epoch` under StepLR.
pub fn step_factor(epoch: usize, step: usize, lr_decay: f64) -> f64 {
    lr_decay.powi((epoch / step.max(1)) as i32)
}

/// Cosine annealing (SGDR without restarts; MRKD eq. 6):
/// η_t = η_min + ½(η_max − η_min)(1 + cos(π·t/T_max)).
pub fn cosine(t: usize, t_max: usize, eta_max: f64, eta_min: f64) -> f64 {
    let t = t.min(t_max) as f64;
    eta_min
        + 0.5 * (eta_max - eta_min) * (1.0 + (std::f64::consts::PI * t / t_max.max(1) as f64).cos())
}

/// A schedule named in a config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Schedule {
    /// The reference's StepLR rule.
    Step {
        lr_decay: f64,
        overall_lr_decay: f64,
    },
    /// Cosine annealing from the base rate to `eta_min` over `t_max` epochs.
    Cosine {
        eta_min: f64,
        t_max: usize,
    },
    Constant,
}

/// The reference's step schedule: the rate is multiplied by `LR_DECAY` every step of epochs.
pub const LR_DECAY: f64 = 0.1;
/// ... until it has fallen by `OVERALL_LR_DECAY` over the run.
pub const OVERALL_LR_DECAY: f64 = 0.01;

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Step {
            lr_decay: LR_DECAY,
            overall_lr_decay: OVERALL_LR_DECAY,
        }
    }
}

impl Schedule {
    /// Rate for 0-based `epoch` given the base rate and the run length.
    pub fn lr(&self, base: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            Schedule::Step {
                lr_decay,
                overall_lr_decay,
            } => {
                base * step_factor(
                    epoch,
                    step_size(epochs, lr_decay, overall_lr_decay),
                    lr_decay,
                )
            }
            Schedule::Cosine { eta_min, t_max } => cosine(epoch, t_max, base, eta_min),
            Schedule::Constant => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_step_rule() {
        assert_eq!(step_size(30, 0.1, 0.01), 10);
        assert_eq!(step_size(2, 0.1, 0.01), 2);
        assert_eq!(step_size(30, 1.0, 0.01), 30);
        let s = Schedule::default();
        assert_eq!(s.lr(1e-4, 0, 30), 1e-4);
        assert_eq!(s.lr(1e-4, 9, 30), 1e-4);
        assert!((s.lr(1e-4, 10, 30) - 1e-5).abs() < 1e-18);
        assert!((s.lr(1e-4, 29, 30) - 1e-6).abs() < 1e-18);
    }

    #[test]
    fn cosine_ends() {
        assert!((cosine(0, 10, 0.1, 0.001) - 0.1).abs() < 1e-15);
        assert!((cosine(10, 10, 0.1, 0.001) - 0.001).abs() < 1e-15);
        assert!((cosine(5, 10, 0.1, 0.0) - 0.05).abs() < 1e-15);
    }
}
