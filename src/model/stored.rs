//! Which variables a run's weight file (`weights.safetensors`) holds, for saving and loading with
//! one rule: the heads, the backbone when training changed it, less a partly fine-tuned run's
//! frozen prefix.

use std::path::Path;

use anyhow::Result;
use tch::nn;

use super::{linearity::BACKBONE_PREFIX, weights};
use crate::run::info::{RunInfo, WEIGHTS};

/// Which variables a run's weight files hold: the heads, plus the backbone when
/// `with_backbone` (`RunInfo::backbone_in_weights`). Saving and loading use the same rule, so a
/// loaded file must hold exactly these tensors.
pub fn stored_in_run(with_backbone: bool) -> impl Fn(&str) -> bool {
    let prefix = format!("{BACKBONE_PREFIX}.");
    move |name: &str| with_backbone || !name.starts_with(&prefix)
}

/// Which variables a run's weight files hold: [`stored_in_run`] less those `pretrained`
/// names (the frozen prefix of a partly fine-tuned run, unchanged from the pretrained file).
pub fn stored_vars<'a>(
    with_backbone: bool,
    pretrained: impl Fn(&str) -> bool + 'a,
) -> impl Fn(&str) -> bool + 'a {
    let stored = stored_in_run(with_backbone);
    move |name: &str| stored(name) && !pretrained(name)
}

/// What the weight file of the run `info` holds, for its network `model` (as built from the
/// run's configuration).
pub fn run_stored<'a>(info: &RunInfo, model: &'a dyn super::IqaModel) -> impl Fn(&str) -> bool + 'a {
    let prefix = info.pretrained_prefix;
    stored_vars(info.backbone_in_weights, move |name| {
        prefix.is_some_and(|k| super::partial::in_prefix(model, name, k))
    })
}

/// Saves the model's weights: the heads, plus the backbone when `with_backbone`.
pub fn save_weights(vs: &nn::VarStore, dir: &Path, with_backbone: bool) -> Result<()> {
    weights::save_safetensors(vs, &dir.join(WEIGHTS), stored_in_run(with_backbone))
}

