//! Partial fine-tuning of LinearityIQA (`freeze_blocks = K`): the stem and the first `K` blocks
//! of the backbone stay at their pretrained weights and run once, in eval mode (BatchNorm with
//! running statistics, folded), on every image; their output is kept (the feature cache, in
//! bf16 unless fp32 is asked) and each training step runs only the later blocks (train-mode
//! BatchNorm and drop connect, as full fine-tuning) and the heads on it.
//!
//! [`PrefixFrozen`] is the model seen that way: its *taps* are the prefix's output (and the
//! pooled level-6 map when block `K - 1` is at or after the level-6 tap), and its *heads* are
//! the trainable blocks, the SPSP pooling and LinearityIQA's heads. So the engine's cached path
//! (`Inputs::Cached`: select the rows of a batch, run `heads`) trains and evaluates it
//! unchanged. Its variables are the wrapped model's; [`IqaModel::is_frozen_with_backbone`] names
//! the prefix's.

use tch::{Kind, Tensor};

use super::backbone::{Backbone, Cut, FrozenPrefix, PrefixMaps};
use super::error::ModelError;
use super::iqa::{is_backbone_var, Arch, EvalForward, EvalPath, IqaModel};
use super::linearity::BACKBONE_PREFIX;
use super::pooling::{pooled_len, spsp};
use super::ModelConfig;

/// LinearityIQA with the stem and the first `k` blocks of its backbone frozen.
#[derive(Debug)]
pub struct PrefixFrozen {
    inner: Box<dyn IqaModel>,
    k: usize,
    /// How the prefix's output is kept (bf16 or f32).
    kind: Kind,
    /// Whether the trainable blocks run in train mode in a training step (else eval mode:
    /// running BatchNorm statistics, no drop connect; `backbone_mode = "eval"`).
    suffix_train: bool,
}

impl PrefixFrozen {
    /// `inner` must be LinearityIQA on a backbone that can be cut ([`Backbone::cut`]) and
    /// `k` between 1 and the backbone's block count; `kind` is `BFloat16` or `Float`.
    pub fn new(inner: Box<dyn IqaModel>, k: usize, kind: Kind) -> Result<Self, ModelError> {
        let refuse = |reason: String| Err(ModelError::CannotFreeze { k, reason });
        if inner.arch() != Arch::Linearity {
            return refuse(format!("only LinearityIQA can be partly frozen, not {}", inner.arch()));
        }
        let backbone = inner.feature_config().backbone;
        let Some(cut) = inner.backbone().cut() else {
            return refuse(format!("the backbone {backbone} cannot be cut (only EfficientNet-Lite can)"));
        };
        if !(1..=cut.blocks()).contains(&k) {
            return refuse(format!("{backbone} has blocks 1 to {} to freeze", cut.blocks()));
        }
        Ok(PrefixFrozen { inner, k, kind, suffix_train: true })
    }

    /// Runs the trainable blocks in eval mode in training steps too when `train` is false.
    pub fn with_suffix_train(mut self, train: bool) -> Self {
        self.suffix_train = train;
        self
    }

    /// The frozen block count.
    pub fn k(&self) -> usize {
        self.k
    }

    fn cut(&self) -> &dyn Cut {
        self.inner.backbone().cut().expect("checked in new")
    }

    fn config(&self) -> ModelConfig {
        self.inner.feature_config()
    }

    /// Whether the level-6 map is computed in the prefix (then its pooled values are a tap).
    fn level6_in_prefix(&self) -> bool {
        self.cut().level6_block() < self.k
    }

    /// The taps of a prefix's maps: its output in the storage precision, the pooled level-6
    /// map when the prefix holds it.
    fn taps_of(&self, maps: PrefixMaps) -> Vec<Tensor> {
        let c = self.config();
        let mut taps = vec![maps.map.to_kind(self.kind)];
        taps.extend(maps.level6.map(|m6| spsp(&m6, c.p6, c.pool)));
        taps
    }
}

impl IqaModel for PrefixFrozen {
    fn arch(&self) -> Arch {
        self.inner.arch()
    }
    fn backbone(&self) -> &dyn Backbone {
        self.inner.backbone()
    }
    fn feature_config(&self) -> ModelConfig {
        self.config()
    }
    /// The channels of the prefix's output map, then the pooled level-6 width when the prefix
    /// holds it.
    fn tap_widths(&self) -> Vec<i64> {
        let mut w = vec![self.cut().channels_after(self.k)];
        if self.level6_in_prefix() {
            let c = self.config();
            let c6 = self.inner.backbone().channels()[0];
            w.push(pooled_len(c6, c.pool, c.p6));
        }
        w
    }
    /// The prefix's output (always eval mode and without gradients: it is frozen).
    fn taps(&self, x: &Tensor, _train_backbone: bool) -> Vec<Tensor> {
        self.taps_of(self.cut().prefix(x, self.k))
    }
    /// The trainable blocks (train mode when `train`, unless built with
    /// [`PrefixFrozen::with_suffix_train`]`(false)`), pooling and heads.
    fn heads(&self, taps: &[Tensor], train: bool) -> Vec<Tensor> {
        let c = self.config();
        let map = taps[0].to_kind(Kind::Float);
        let (m6, m7) = self.cut().suffix(&map, self.k, train && self.suffix_train);
        let f6 = match m6 {
            Some(m6) => spsp(&m6, c.p6, c.pool),
            None => taps[1].shallow_clone(),
        };
        self.inner.heads(&[f6, spsp(&m7, c.p7, c.pool)], train)
    }
    fn eval_path(&self) -> EvalPath<'_> {
        EvalPath::new(PrefixEval {
            model: self,
            prefix: self.cut().frozen_prefix(self.k),
        })
    }
    fn cache_tag(&self) -> String {
        let precision = match self.kind {
            Kind::BFloat16 => "bf16",
            _ => "fp32",
        };
        format!("prefix-{}-{precision}", self.k)
    }
    fn is_frozen_with_backbone(&self, name: &str) -> bool {
        in_prefix(self.inner.as_ref(), name, self.k)
    }
}

/// Whether the variable `name` of `model` is in its backbone's stem or first `k` blocks.
pub fn in_prefix(model: &dyn IqaModel, name: &str, k: usize) -> bool {
    let cut = model.backbone().cut();
    is_backbone_var(name)
        && cut.is_some_and(|c| c.in_prefix(&name[BACKBONE_PREFIX.len() + 1..], k))
}

/// [`PrefixFrozen`]'s eval path: the prefix with BatchNorm folded, the rest in eval mode.
struct PrefixEval<'a> {
    model: &'a PrefixFrozen,
    prefix: Box<dyn FrozenPrefix>,
}

impl EvalForward for PrefixEval<'_> {
    fn taps(&self, x: &Tensor) -> Vec<Tensor> {
        self.model.taps_of(self.prefix.forward(x))
    }
    fn outputs(&self, x: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        Ok(self.model.heads(&self.taps(x), false))
    }
}
