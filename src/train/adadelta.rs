//! Adadelta (Zeiler 2012) as `torch.optim.Adadelta`, which tch does not offer: per parameter
//! `v ← ρv + (1−ρ)g²`, `Δ = √(u+ε)/√(v+ε)·g`, `u ← ρu + (1−ρ)Δ²`, `θ ← θ − lr·Δ`, with
//! `g ← g + wd·θ` first when weight decay is set. Learning rates per group as the other
//! optimisers (heads, backbone).

use tch::nn;

use super::slots::{self as optim, Slot};

pub struct Adadelta {
    pub(crate) slots: Vec<Slot>,
    lr: [f64; 2],
    rho: f64,
    eps: f64,
    wd: f64,
}

impl Adadelta {
    /// Over every trainable variable of `vs` (those with `requires_grad`).
    pub fn new(vs: &nn::VarStore, lr: f64, rho: f64, eps: f64, wd: f64) -> Self {
        Adadelta {
            slots: optim::slots(vs),
            lr: [lr; 2],
            rho,
            eps,
            wd,
        }
    }

    pub fn set_lr_group(&mut self, group: usize, lr: f64) {
        optim::set_group_lr(&mut self.lr, group, lr);
    }

    pub fn zero_grad(&mut self) {
        optim::zero_grad(&self.slots);
    }

    /// Per slot: buffers [E[g²], E[Δ²]], zero before the first step.
    pub fn step(&mut self) {
        let (rho, eps, wd) = (self.rho, self.eps, self.wd);
        tch::no_grad(|| {
            for s in &mut self.slots {
                let lr = self.lr[s.group];
                let g = s.param.grad();
                if !g.defined() || lr == 0.0 {
                    continue;
                }
                let g = if wd != 0.0 { &g + &s.param * wd } else { g };
                if s.bufs.is_empty() {
                    s.bufs = vec![s.param.zeros_like(), s.param.zeros_like()];
                }
                let (v, u) = s.bufs.split_at_mut(1);
                let _ = v[0].g_mul_scalar_(rho).g_add_(&(&g * &g * (1.0 - rho)));
                let delta = (&u[0] + eps).sqrt() / (&v[0] + eps).sqrt() * &g;
                let _ = u[0]
                    .g_mul_scalar_(rho)
                    .g_add_(&(&delta * &delta * (1.0 - rho)));
                let _ = s.param.g_sub_(&(delta * lr));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::linearity::HEADS_GROUP;
    use tch::{Device, Kind, Tensor};

    /// Two steps on f(θ) = Σθ² against torch.optim.Adadelta(lr=1.0, rho=0.9, eps=1e-6):
    /// θ0 = [1, -2] → step 1: Δ = √1e-6/√(0.1·g²+1e-6)·g.
    #[test]
    fn matches_the_pytorch_update() {
        let vs = nn::VarStore::new(Device::Cpu);
        let p = vs
            .root()
            .set_group(HEADS_GROUP)
            .var_copy("w", &Tensor::from_slice(&[1.0f32, -2.0]));
        let mut opt = Adadelta::new(&vs, 1.0, 0.9, 1e-6, 0.0);
        let mut expect = [1.0f64, -2.0];
        let (mut v, mut u) = ([0.0f64; 2], [0.0f64; 2]);
        for _ in 0..2 {
            opt.zero_grad();
            (&p * &p).sum(Kind::Float).backward();
            opt.step();
            for i in 0..2 {
                let g = 2.0 * expect[i];
                v[i] = 0.9 * v[i] + 0.1 * g * g;
                let d = (u[i] + 1e-6f64).sqrt() / (v[i] + 1e-6).sqrt() * g;
                u[i] = 0.9 * u[i] + 0.1 * d * d;
                expect[i] -= d;
            }
        }
        let got = Vec::<f64>::try_from(p.to_kind(Kind::Double)).unwrap();
        for i in 0..2 {
            assert!((got[i] - expect[i]).abs() < 1e-6, "{got:?} vs {expect:?}");
        }
    }
}
