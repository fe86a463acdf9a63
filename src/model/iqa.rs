//! The one model interface: what the training engine, the feature cache and inference need from
//! a quality model. A new model implements [`IqaModel`] in one file, gets an [`Arch`] variant
//! (`run::model`) and a line in [`super::registry`]'s `Arch::build`;
//! neither the engine nor the procedures change.
//!
//! A model is a backbone (variables under `backbone.`, optimiser group [`BACKBONE_GROUP`]), the
//! *taps* read from the backbone's feature maps (what a frozen backbone's feature cache stores,
//! one tensor per tap, rows = images), and heads on the taps (variables at the root, group
//! [`HEADS_GROUP`]). Its outputs are named heads; the last one is the prediction.

use tch::{Kind, Tensor};

use super::backbone::{Backbone, FrozenBackbone};
use super::error::ModelError;
use super::precision::Precision;
pub use crate::run::model::{Arch, ModelConfig, UnknownArch};

/// Optimiser group of the heads (learning rate `lr`).
pub const HEADS_GROUP: usize = 0;
/// Optimiser group of the backbone (learning rate `lr · ft_lr_ratio`).
pub const BACKBONE_GROUP: usize = 1;
/// Variable-name prefix of the backbone.
pub const BACKBONE_PREFIX: &str = "backbone";

/// A no-reference quality model as the engine sees it.
pub trait IqaModel: std::fmt::Debug {
    fn arch(&self) -> Arch;
    /// The ImageNet backbone (its pretrained `.pth` is loaded under `backbone.`).
    fn backbone(&self) -> &dyn Backbone;
    /// See [`Arch::feature_config`].
    fn feature_config(&self) -> ModelConfig;
    /// Widths of the taps (dimension 1 of each cached tensor: columns, or a map's channels).
    fn tap_widths(&self) -> Vec<i64>;
    /// The taps of a normalised NCHW batch (what a frozen backbone's feature cache stores).
    fn taps(&self, x: &Tensor, train_backbone: bool) -> Vec<Tensor>;
    /// The outputs (one tensor of shape [B] per head, the prediction last) from the taps.
    fn heads(&self, taps: &[Tensor], train: bool) -> Vec<Tensor>;
    /// The model prepared for eval-mode forwards without gradients (BatchNorm folded where it
    /// can be). A snapshot of the current weights.
    fn eval_path(&self) -> EvalPath<'_>;
    /// [`Self::eval_path`] at `precision` (resolved: fp32, bf16 or int8). fp32 is the eval path
    /// itself; a model that supports others overrides this (see [`FusedTwoLevel::at`]).
    fn eval_path_at(&self, precision: Precision) -> Result<EvalPath<'_>, ModelError> {
        match precision {
            Precision::Auto | Precision::Fp32 => Ok(self.eval_path()),
            _ => Err(precision_error(self, precision)),
        }
    }
    /// The folded backbone of [`Self::eval_path_at`], for an inference model to prepare once
    /// and keep ([`Self::eval_path_over`]): folding, and for int8 quantising and packing the
    /// weights, then happen once per loaded model instead of once per batch. `None` where the
    /// eval path has no such part (it is then built per call).
    fn frozen_at(&self, precision: Precision) -> Result<Option<Box<dyn FrozenBackbone>>, ModelError> {
        let _ = precision;
        Ok(None)
    }
    /// [`Self::eval_path_at`] over a backbone [`Self::frozen_at`] prepared (of the same
    /// weights, which must not have changed since).
    fn eval_path_over<'a>(&'a self, frozen: &'a dyn FrozenBackbone) -> EvalPath<'a> {
        let _ = frozen;
        self.eval_path()
    }

    /// Names of the outputs, the prediction last.
    fn head_names(&self) -> &'static [&'static str] {
        self.arch().head_names()
    }
    /// The full forward pass.
    fn outputs(&self, x: &Tensor, train_backbone: bool, train_heads: bool) -> Vec<Tensor> {
        self.heads(&self.taps(x, train_backbone), train_heads)
    }
    /// Whether a variable belongs to what a frozen backbone freezes (the backbone; DBCNN's two
    /// streams).
    fn is_frozen_with_backbone(&self, name: &str) -> bool {
        is_backbone_var(name)
    }
    /// What else the taps depend on, for the feature-cache key: [`Arch::tap_tag`]; a partly
    /// frozen model adds its block count and storage precision ([`super::partial`]).
    fn cache_tag(&self) -> String {
        self.arch().tap_tag(&self.feature_config())
    }
}

/// Whether `name` is a variable of the ImageNet backbone (`backbone.*`).
pub fn is_backbone_var(name: &str) -> bool {
    name.strip_prefix(BACKBONE_PREFIX).is_some_and(|r| r.starts_with('.'))
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
    fn taps(&self, x: &Tensor, train_backbone: bool) -> Vec<Tensor> {
        (**self).taps(x, train_backbone)
    }
    fn heads(&self, taps: &[Tensor], train: bool) -> Vec<Tensor> {
        (**self).heads(taps, train)
    }
    fn eval_path(&self) -> EvalPath<'_> {
        (**self).eval_path()
    }
    fn eval_path_at(&self, precision: Precision) -> Result<EvalPath<'_>, ModelError> {
        (**self).eval_path_at(precision)
    }
    fn frozen_at(&self, precision: Precision) -> Result<Option<Box<dyn FrozenBackbone>>, ModelError> {
        (**self).frozen_at(precision)
    }
    fn eval_path_over<'a>(&'a self, frozen: &'a dyn FrozenBackbone) -> EvalPath<'a> {
        (**self).eval_path_over(frozen)
    }
    fn head_names(&self) -> &'static [&'static str] {
        (**self).head_names()
    }
    fn outputs(&self, x: &Tensor, train_backbone: bool, train_heads: bool) -> Vec<Tensor> {
        (**self).outputs(x, train_backbone, train_heads)
    }
    fn is_frozen_with_backbone(&self, name: &str) -> bool {
        (**self).is_frozen_with_backbone(name)
    }
    fn cache_tag(&self) -> String {
        (**self).cache_tag()
    }
}

/// A model's eval-mode forward (no gradients), as prepared by [`IqaModel::eval_path`].
pub trait EvalForward {
    /// The taps (what the feature cache stores).
    fn taps(&self, x: &Tensor) -> Vec<Tensor>;
    /// The outputs of whole images.
    fn outputs(&self, x: &Tensor) -> Result<Vec<Tensor>, ModelError>;
}

/// See [`IqaModel::eval_path`].
pub struct EvalPath<'a>(Box<dyn EvalForward + 'a>);

impl<'a> EvalPath<'a> {
    pub fn new(f: impl EvalForward + 'a) -> Self {
        EvalPath(Box::new(f))
    }
    /// The taps (eval mode, no gradients).
    pub fn taps(&self, x: &Tensor) -> Vec<Tensor> {
        tch::no_grad(|| self.0.taps(x))
    }
    /// The outputs (eval mode, no gradients).
    pub fn outputs(&self, x: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        tch::no_grad(|| self.0.outputs(x))
    }
}

/// Models whose taps are the two backbone levels pooled (LinearityIQA, the plain regressor).
pub trait TwoLevel: IqaModel {
    /// The taps of the backbone's two feature maps.
    fn pool(&self, m6: &Tensor, m7: &Tensor) -> Vec<Tensor>;
}

/// [`IqaModel::taps`] of a [`TwoLevel`] model.
pub fn two_level_taps<M: TwoLevel + ?Sized>(m: &M, x: &Tensor, train_backbone: bool) -> Vec<Tensor> {
    let (m6, m7) = m.backbone().forward_two(x, train_backbone);
    m.pool(&m6, &m7)
}

/// The eval path of a [`TwoLevel`] model: the backbone with BatchNorm folded (when it has any).
pub struct FusedTwoLevel<'a, M: TwoLevel + ?Sized> {
    model: &'a M,
    fused: Option<Frozen<'a>>,
}

/// A folded backbone built for one eval path, or prepared once and lent to each.
enum Frozen<'a> {
    Own(Box<dyn FrozenBackbone>),
    Lent(&'a dyn FrozenBackbone),
}

impl Frozen<'_> {
    fn get(&self) -> &dyn FrozenBackbone {
        match self {
            Frozen::Own(b) => b.as_ref(),
            Frozen::Lent(b) => *b,
        }
    }
}

impl<'a, M: TwoLevel + ?Sized> FusedTwoLevel<'a, M> {
    pub fn new(model: &'a M) -> Self {
        FusedTwoLevel {
            model,
            fused: model.backbone().fuse().map(Frozen::Own),
        }
    }

    /// The eval path with the folded backbone at `precision` and the heads in fp32
    /// ([`super::backbone::fused::at_kind`]); refused for a backbone that does not fold.
    pub fn at(model: &'a M, precision: Precision) -> Result<Self, ModelError> {
        let fused = Self::frozen(model, precision)?;
        Ok(FusedTwoLevel { model, fused: fused.map(Frozen::Own) })
    }

    /// The eval path over `frozen`, prepared by [`Self::frozen`].
    pub fn over(model: &'a M, frozen: &'a dyn FrozenBackbone) -> Self {
        FusedTwoLevel { model, fused: Some(Frozen::Lent(frozen)) }
    }

    /// The folded backbone at `precision` (`None`: fp32 on a backbone that does not fold, whose
    /// own forward then runs); refused for other precisions of such a backbone.
    pub fn frozen(model: &M, precision: Precision) -> Result<Option<Box<dyn FrozenBackbone>>, ModelError> {
        if precision == Precision::Int8 {
            return match model.backbone().fuse_int8() {
                Some(fused) => Ok(Some(fused?)),
                None => Err(precision_error(model, precision)),
            };
        }
        match (model.backbone().fuse(), precision.kind()) {
            (fused, Kind::Float) => Ok(fused),
            (Some(f), kind) => Ok(Some(super::backbone::fused::at_kind(f, kind))),
            (None, _) => Err(precision_error(model, precision)),
        }
    }
}

/// `model` cannot run at `precision`.
fn precision_error<M: IqaModel + ?Sized>(model: &M, precision: Precision) -> ModelError {
    ModelError::Precision {
        model: model.arch().name(),
        backbone: model.feature_config().backbone,
        precision,
    }
}

impl<M: TwoLevel + ?Sized> EvalForward for FusedTwoLevel<'_, M> {
    fn taps(&self, x: &Tensor) -> Vec<Tensor> {
        let (m6, m7) = match &self.fused {
            Some(f) => f.get().forward_two(x),
            None => self.model.backbone().forward_two(x, false),
        };
        self.model.pool(&m6, &m7)
    }
    fn outputs(&self, x: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        Ok(self.model.heads(&self.taps(x), false))
    }
}

/// The optimiser group of a variable: the backbone's (`backbone.*`) or the heads'.
pub fn group_of(name: &str) -> usize {
    match is_backbone_var(name) {
        true => BACKBONE_GROUP,
        false => HEADS_GROUP,
    }
}
