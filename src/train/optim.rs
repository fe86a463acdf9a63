//! Adam and SGD with the update rules of libtorch's `torch::optim::Adam` / `SGD` (what tch's
//! `nn::Adam` / `nn::Sgd` run), written out so that their state (moments, momentum buffers, step
//! count) can be saved with a checkpoint and an interrupted run resumed exactly. Learning rates
//! per group: heads and backbone, as the reference's parameter groups.
//!
//! Adam (Kingma & Ba 2015, as libtorch): `g ← g + wd·θ`; `m ← β1·m + (1−β1)·g`;
//! `v ← β2·v + (1−β2)·g²`; `θ ← θ − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`.
//! SGD with momentum μ (dampening 0, no Nesterov, as libtorch's defaults): `g ← g + wd·θ`;
//! `b ← g` at the first step, then `b ← μ·b + g`; `θ ← θ − lr·b`.


use anyhow::Result;

pub(crate) use super::slots::{load_state, set_group_lr, slots, state, zero_grad, Slot};

use crate::run::config::OptimizerKind;
use tch::{nn, Tensor};


pub struct Adam {
    pub(crate) slots: Vec<Slot>,
    lr: [f64; 2],
    betas: (f64, f64),
    eps: f64,
    wd: f64,
    pub(crate) step: i64,
}

impl Adam {
    /// tch's `nn::Adam` defaults: β = (0.9, 0.999), ε = 1e-8.
    pub fn new(vs: &nn::VarStore, lr: f64, wd: f64) -> Self {
        Adam {
            slots: slots(vs),
            lr: [lr; 2],
            betas: (0.9, 0.999),
            eps: 1e-8,
            wd,
            step: 0,
        }
    }

    pub fn set_lr_group(&mut self, group: usize, lr: f64) {
        set_group_lr(&mut self.lr, group, lr);
    }

    pub fn step(&mut self) {
        self.step += 1;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - b1.powi(self.step as i32);
        let bc2 = 1.0 - b2.powi(self.step as i32);
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                let g = if self.wd != 0.0 {
                    g.g_add(&(&s.param * self.wd))
                } else {
                    g
                };
                if s.bufs.is_empty() {
                    s.bufs = vec![s.param.zeros_like(), s.param.zeros_like()];
                }
                let (m, v) = s.bufs.split_at_mut(1);
                let _ = m[0].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = v[0].g_mul_scalar_(b2).g_add_(&(&g * &g * (1.0 - b2)));
                let denom = (v[0].sqrt() / bc2.sqrt()) + self.eps;
                let lr = self.lr[s.group];
                let _ = s.param.g_add_(&(&m[0] / denom * (-lr / bc1)));
            }
        });
    }
}

pub struct Sgd {
    pub(crate) slots: Vec<Slot>,
    lr: [f64; 2],
    momentum: f64,
    wd: f64,
}

impl Sgd {
    pub fn new(vs: &nn::VarStore, lr: f64, momentum: f64, wd: f64) -> Self {
        Sgd {
            slots: slots(vs),
            lr: [lr; 2],
            momentum,
            wd,
        }
    }

    pub fn set_lr_group(&mut self, group: usize, lr: f64) {
        set_group_lr(&mut self.lr, group, lr);
    }

    pub fn step(&mut self) {
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.param.grad();
                if !g.defined() {
                    continue;
                }
                let mut d = if self.wd != 0.0 {
                    g.g_add(&(&s.param * self.wd))
                } else {
                    g
                };
                if self.momentum != 0.0 {
                    if s.bufs.is_empty() {
                        s.bufs = vec![d.copy()];
                    } else {
                        let _ = s.bufs[0].g_mul_scalar_(self.momentum).g_add_(&d);
                    }
                    d = s.bufs[0].shallow_clone();
                }
                let lr = self.lr[s.group];
                let _ = s.param.g_add_(&(d * (-lr)));
            }
        });
    }
}

/// The configured optimiser (ours, with libtorch's update rules, so that its state can be saved
/// and a run resumed; `optim.rs`, `adadelta.rs`).
pub enum Opt {
    Adam(Adam),
    Sgd(Sgd),
    Adadelta(super::adadelta::Adadelta),
}

impl Opt {
    /// Builds the configured optimiser over all trainable variables of `vs` at rate `lr`.
    pub fn build(
        kind: OptimizerKind,
        vs: &nn::VarStore,
        lr: f64,
        weight_decay: f64,
    ) -> Result<Self> {
        Ok(match kind {
            OptimizerKind::Adam => Opt::Adam(Adam::new(vs, lr, weight_decay)),
            OptimizerKind::Sgd { momentum } => {
                Opt::Sgd(Sgd::new(vs, lr, momentum, weight_decay))
            }
            OptimizerKind::Adadelta { rho, eps } => Opt::Adadelta(super::adadelta::Adadelta::new(
                vs,
                lr,
                rho,
                eps,
                weight_decay,
            )),
        })
    }
    pub fn set_lr_group(&mut self, group: usize, lr: f64) {
        match self {
            Opt::Adam(o) => o.set_lr_group(group, lr),
            Opt::Sgd(o) => o.set_lr_group(group, lr),
            Opt::Adadelta(o) => o.set_lr_group(group, lr),
        }
    }
    /// The variables with their buffers (every optimiser keeps them the same way).
    fn slots(&self) -> &[Slot] {
        match self {
            Opt::Adam(o) => &o.slots,
            Opt::Sgd(o) => &o.slots,
            Opt::Adadelta(o) => &o.slots,
        }
    }
    pub fn zero_grad(&mut self) {
        zero_grad(self.slots());
    }
    pub fn step(&mut self) {
        match self {
            Opt::Adam(o) => o.step(),
            Opt::Sgd(o) => o.step(),
            Opt::Adadelta(o) => o.step(),
        }
    }
    /// The optimiser's buffers as named tensors, and its step count (Adam's bias correction).
    pub fn state(&self) -> (Vec<(String, Tensor)>, i64) {
        let step = match self {
            Opt::Adam(o) => o.step,
            _ => 0,
        };
        (state(self.slots()), step)
    }
    /// Restores what [`Opt::state`] returned.
    pub fn load_state(
        &mut self,
        saved: &std::collections::HashMap<String, Tensor>,
        step: i64,
    ) -> Result<()> {
        // Buffers per variable: Adam [m, v], SGD [momentum], Adadelta [E[g²], E[Δ²]].
        match self {
            Opt::Adam(o) => {
                o.step = step;
                load_state(&mut o.slots, saved, 2)
            }
            Opt::Sgd(o) => load_state(&mut o.slots, saved, 1),
            Opt::Adadelta(o) => load_state(&mut o.slots, saved, 2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::linearity::{BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};
    use tch::nn::OptimizerConfig;
    use tch::{Device, Kind};

    /// A head variable and a backbone variable, a loss with a non-trivial gradient.
    fn problem() -> (nn::VarStore, Tensor, Tensor) {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let h = root.set_group(HEADS_GROUP).var(
            "w",
            &[4, 3],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        let b = (root.set_group(BACKBONE_GROUP) / BACKBONE_PREFIX).var(
            "v",
            &[3],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        (vs, h, b)
    }

    fn loss(h: &Tensor, b: &Tensor) -> Tensor {
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25]).view([1, 4]);
        (x.matmul(h) * b)
            .tanh()
            .pow_tensor_scalar(2)
            .sum(Kind::Float)
            + (b * b).sum(Kind::Float) * 0.1
    }

    fn run(which: &str, ours: bool) -> Vec<f64> {
        let (vs, h, b) = problem();
        let (lr, wd) = (0.05, 0.01);
        enum O {
            Tch(nn::Optimizer),
            Adam(Adam),
            Sgd(Sgd),
        }
        let mut o = match (which, ours) {
            ("adam", false) => O::Tch(
                nn::Adam {
                    wd,
                    ..Default::default()
                }
                .build(&vs, lr)
                .unwrap(),
            ),
            ("sgd", false) => O::Tch(
                nn::Sgd {
                    momentum: 0.9,
                    wd,
                    ..Default::default()
                }
                .build(&vs, lr)
                .unwrap(),
            ),
            ("adam", true) => O::Adam(Adam::new(&vs, lr, wd)),
            _ => O::Sgd(Sgd::new(&vs, lr, 0.9, wd)),
        };
        for step in 0..6 {
            // Different rates per group, changed during training (as the schedule does).
            let (lh, lb) = (lr / (1.0 + step as f64), lr * 0.1);
            match &mut o {
                O::Tch(t) => {
                    t.set_lr_group(HEADS_GROUP, lh);
                    t.set_lr_group(BACKBONE_GROUP, lb);
                    t.zero_grad();
                }
                O::Adam(a) => {
                    a.set_lr_group(HEADS_GROUP, lh);
                    a.set_lr_group(BACKBONE_GROUP, lb);
                    zero_grad(&a.slots);
                }
                O::Sgd(s) => {
                    s.set_lr_group(HEADS_GROUP, lh);
                    s.set_lr_group(BACKBONE_GROUP, lb);
                    zero_grad(&s.slots);
                }
            }
            loss(&h, &b).backward();
            match &mut o {
                O::Tch(t) => t.step(),
                O::Adam(a) => a.step(),
                O::Sgd(s) => s.step(),
            }
        }
        let mut out = Vec::<f64>::try_from(h.flatten(0, -1).to_kind(Kind::Double)).unwrap();
        out.extend(Vec::<f64>::try_from(b.to_kind(Kind::Double)).unwrap());
        out
    }

    #[test]
    fn adam_and_sgd_follow_libtorch() {
        for which in ["adam", "sgd"] {
            let (a, b) = (run(which, true), run(which, false));
            let start = {
                let (_vs, h, b0) = problem();
                let mut v = Vec::<f64>::try_from(h.flatten(0, -1).to_kind(Kind::Double)).unwrap();
                v.extend(Vec::<f64>::try_from(b0.to_kind(Kind::Double)).unwrap());
                v
            };
            let moved = a
                .iter()
                .zip(&start)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(moved > 1e-3, "{which}: the parameters moved ({moved})");
            let diff = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(diff < 1e-6, "{which}: ours vs libtorch differ by {diff}");
        }
    }
}
