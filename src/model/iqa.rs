//! The one model interface: what the training engine, the feature cache and inference need from
//! a quality model. A new model implements [`IqaModel`] in one file and gets an [`Arch`] variant;
//! neither the engine nor the procedures change.
//!
//! A model is a backbone (variables under `backbone.`, optimiser group [`BACKBONE_GROUP`]), the
//! *taps* read from the backbone's feature maps (what a frozen backbone's feature cache stores,
//! one tensor per tap, rows = images), and heads on the taps (variables at the root, group
//! [`HEADS_GROUP`]). Its outputs are named heads; the last one is the prediction.

use tch::{nn, Tensor};

use super::backbone::{Backbone, FrozenBackbone};
use super::linearity::{BACKBONE_GROUP, HEADS_GROUP};
use super::{LinearityIqa, ModelConfig, PlainIqa};

/// Which network: the name in configurations (`arch = "linearity"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// LinearityIQA (three heads; the fused head is the prediction).
    #[default]
    Linearity,
    /// Backbone → global average pooling of the last stage → Linear(C, 1) (the MRKD paper's
    /// "ResNet50"-style regressor).
    Plain,
}

/// An architecture name that is not one of [`Arch`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown model '{0}' (expected linearity or plain)")]
pub struct UnknownArch(pub String);

impl std::str::FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Self, UnknownArch> {
        match s {
            "linearity" | "linearity-iqa" => Ok(Arch::Linearity),
            "plain" | "linear" => Ok(Arch::Plain),
            o => Err(UnknownArch(o.to_string())),
        }
    }
}

impl Arch {
    /// Builds the network in `vs` (variables named as its published weights below `backbone.`).
    pub fn build(&self, vs: &nn::VarStore, config: &ModelConfig) -> Box<dyn IqaModel> {
        match self {
            Arch::Linearity => Box::new(LinearityIqa::new(vs, config.clone())),
            Arch::Plain => Box::new(PlainIqa::new(vs, self.feature_config(config))),
        }
    }

    /// The configuration whose pooled features this network reads (the feature-cache key): the
    /// plain regressor always pools globally by average, so it shares LinearityIQA's default
    /// cached features.
    pub fn feature_config(&self, config: &ModelConfig) -> ModelConfig {
        match self {
            Arch::Linearity => config.clone(),
            Arch::Plain => PlainIqa::feature_config(config),
        }
    }

    /// Names of the outputs, the prediction last.
    pub fn head_names(&self) -> &'static [&'static str] {
        match self {
            Arch::Linearity => &["head6", "head7", "fused"],
            Arch::Plain => &["score"],
        }
    }
}

/// A no-reference quality model as the engine sees it.
pub trait IqaModel: std::fmt::Debug {
    fn arch(&self) -> Arch;
    fn backbone(&self) -> &dyn Backbone;
    /// See [`Arch::feature_config`].
    fn feature_config(&self) -> ModelConfig;
    /// Widths of the taps (columns of each cached tensor).
    fn tap_widths(&self) -> Vec<i64>;
    /// The taps of the backbone's two feature maps.
    fn pool(&self, m6: &Tensor, m7: &Tensor) -> Vec<Tensor>;
    /// The outputs (one tensor of shape [B] per head, the prediction last) from the taps.
    fn heads(&self, taps: &[Tensor], train: bool) -> Vec<Tensor>;

    /// Names of the outputs, the prediction last.
    fn head_names(&self) -> &'static [&'static str] {
        self.arch().head_names()
    }
    /// The taps of a normalised NCHW batch.
    fn taps(&self, x: &Tensor, train_backbone: bool) -> Vec<Tensor> {
        let (m6, m7) = self.backbone().forward_two(x, train_backbone);
        self.pool(&m6, &m7)
    }
    /// The full forward pass.
    fn outputs(&self, x: &Tensor, train_backbone: bool, train_heads: bool) -> Vec<Tensor> {
        self.heads(&self.taps(x, train_backbone), train_heads)
    }
}

/// A boxed model is a model (so `&Box<dyn IqaModel>` passes where `&dyn IqaModel` is asked).
impl<T: IqaModel + ?Sized> IqaModel for Box<T> {
    fn arch(&self) -> Arch {
        (**self).arch()
    }
    fn backbone(&self) -> &dyn Backbone {
        (**self).backbone()
    }
    fn feature_config(&self) -> ModelConfig {
        (**self).feature_config()
    }
    fn tap_widths(&self) -> Vec<i64> {
        (**self).tap_widths()
    }
    fn pool(&self, m6: &Tensor, m7: &Tensor) -> Vec<Tensor> {
        (**self).pool(m6, m7)
    }
    fn heads(&self, taps: &[Tensor], train: bool) -> Vec<Tensor> {
        (**self).heads(taps, train)
    }
    fn head_names(&self) -> &'static [&'static str] {
        (**self).head_names()
    }
    fn taps(&self, x: &Tensor, train_backbone: bool) -> Vec<Tensor> {
        (**self).taps(x, train_backbone)
    }
    fn outputs(&self, x: &Tensor, train_backbone: bool, train_heads: bool) -> Vec<Tensor> {
        (**self).outputs(x, train_backbone, train_heads)
    }
}

impl dyn IqaModel + '_ {
    /// The model prepared for eval-mode forwards without gradients (BatchNorm folded into the
    /// backbone's convolutions where it has any). A snapshot of the current weights.
    pub fn eval_path(&self) -> EvalPath<'_> {
        EvalPath {
            model: self,
            fused: self.backbone().fuse(),
        }
    }
}

/// See [`IqaModel::eval_path`].
pub struct EvalPath<'a> {
    model: &'a dyn IqaModel,
    fused: Option<Box<dyn FrozenBackbone>>,
}

impl EvalPath<'_> {
    /// The taps (eval mode, no gradients).
    pub fn taps(&self, x: &Tensor) -> Vec<Tensor> {
        tch::no_grad(|| {
            let (m6, m7) = match &self.fused {
                Some(f) => f.forward_two(x),
                None => self.model.backbone().forward_two(x, false),
            };
            self.model.pool(&m6, &m7)
        })
    }

    /// The outputs (eval mode, no gradients).
    pub fn outputs(&self, x: &Tensor) -> Vec<Tensor> {
        let taps = self.taps(x);
        tch::no_grad(|| self.model.heads(&taps, false))
    }
}

/// The optimiser group of a variable: the backbone's (`backbone.*`) or the heads'.
pub fn group_of(name: &str) -> usize {
    match name.strip_prefix(super::linearity::BACKBONE_PREFIX) {
        Some(rest) if rest.starts_with('.') => BACKBONE_GROUP,
        _ => HEADS_GROUP,
    }
}
