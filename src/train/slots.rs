//! The trainable variables of a VarStore as an optimiser holds them ([`Slot`]: name, group,
//! buffers), and what every optimiser does with them: rates per group, zeroed gradients, the
//! buffers saved with a checkpoint and restored on resume.

use std::collections::HashMap;

use anyhow::{bail, Result};
use tch::{nn, Tensor};

use crate::model::linearity::{BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};

/// A trainable variable with its group and its optimiser buffers.
pub(crate) struct Slot {
    pub name: String,
    pub param: Tensor,
    pub group: usize,
    /// Created at a slot's first step: Adam [m, v]; SGD with momentum [b]; Adadelta [E[g²], E[Δ²]].
    pub bufs: Vec<Tensor>,
}

/// Every trainable variable of `vs` (those with `requires_grad`), sorted by name.
pub(crate) fn slots(vs: &nn::VarStore) -> Vec<Slot> {
    let prefix = format!("{BACKBONE_PREFIX}.");
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(name, param)| Slot {
            group: if name.starts_with(&prefix) {
                BACKBONE_GROUP
            } else {
                HEADS_GROUP
            },
            name,
            param,
            bufs: Vec::new(),
        })
        .collect()
}

/// Sets the rate of group `group` (heads or backbone); other indices are ignored.
pub(crate) fn set_group_lr(lr: &mut [f64; 2], group: usize, value: f64) {
    if let Some(l) = lr.get_mut(group) {
        *l = value;
    }
}

pub(crate) fn zero_grad(slots: &[Slot]) {
    for s in slots {
        let mut g = s.param.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

/// The buffers of every slot as named tensors (`NAME#k`), for a checkpoint.
pub(crate) fn state(slots: &[Slot]) -> Vec<(String, Tensor)> {
    slots
        .iter()
        .flat_map(|s| {
            s.bufs
                .iter()
                .enumerate()
                .map(move |(k, b)| (format!("{}#{k}", s.name), b.shallow_clone()))
        })
        .collect()
}

/// Restores buffers saved by [`state`]; every slot must find the same number it had.
pub(crate) fn load_state(
    slots: &mut [Slot],
    saved: &HashMap<String, Tensor>,
    per_slot: usize,
) -> Result<()> {
    for s in slots.iter_mut() {
        let bufs: Vec<Tensor> = (0..per_slot)
            .filter_map(|k| {
                saved
                    .get(&format!("{}#{k}", s.name))
                    .map(|t| t.to_device(s.param.device()))
            })
            .collect();
        match bufs.len() {
            0 => s.bufs.clear(),
            n if n == per_slot => s.bufs = bufs,
            n => bail!("optimiser state of {}: {n} of {per_slot} buffers", s.name),
        }
    }
    Ok(())
}
