//! The plain regressor of the MRKD paper's "ResNet50" model: an ImageNet backbone, global average
//! pooling of its last stage, one linear layer to the score (torchvision's ResNet-50 with `fc`
//! replaced by Linear(2048, 1)). Fine-tuned as a whole, or trained on cached pooled features with
//! the backbone frozen.
//!
//! Same variables as `distill::PlainIqa` (backbone under `backbone.` in group 1 with its published
//! names, `fc.weight` and `fc.bias` in group 0, PyTorch's default Linear initialisation), so the
//! weights of either load into the other; this file adds the forward, feature/head split and
//! inference path that the plain model needs on the model side.
//!
//! **Stand-in backbone.** ResNet-50 is the paper's; EfficientNet-Lite0 (1280 pooled values, the
//! ImageNet weights obtainable here) is the documented stand-in; any registered backbone works.

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::backbone::{Backbone, FrozenBackbone};
use super::linearity::{torch_linear, BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};
use super::BackboneName;

/// What defines a plain regressor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegressorConfig {
    /// `resnet50` as the MRKD paper, or a stand-in (`efficientnet-lite0`).
    #[serde(default = "default_backbone")]
    pub backbone: BackboneName,
    /// Stochastic-depth rate of an EfficientNet backbone in training mode.
    #[serde(default = "default_drop_connect")]
    pub drop_connect: f64,
}

fn default_backbone() -> BackboneName {
    BackboneName::ResNet50
}
fn default_drop_connect() -> f64 {
    0.2
}

impl Default for RegressorConfig {
    fn default() -> Self {
        RegressorConfig {
            backbone: default_backbone(),
            drop_connect: default_drop_connect(),
        }
    }
}

/// Backbone → global average pooling of the last stage → Linear(C, 1).
#[derive(Debug)]
pub struct PlainRegressor {
    pub config: RegressorConfig,
    pub backbone: Box<dyn Backbone>,
    pub fc: nn::Linear,
}

impl PlainRegressor {
    pub fn new(vs: &nn::VarStore, config: RegressorConfig) -> Self {
        let root = vs.root();
        let backbone = config.backbone.build(
            &(root.set_group(BACKBONE_GROUP) / BACKBONE_PREFIX),
            config.drop_connect,
        );
        let fc = torch_linear(
            root.set_group(HEADS_GROUP) / "fc",
            backbone.channels()[1],
            1,
        );
        PlainRegressor {
            config,
            backbone,
            fc,
        }
    }

    /// Pooled last-stage features [N, C] of a normalised NCHW batch (what a frozen run caches:
    /// LinearityIQA's level-7 features with average pooling).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        gap(&self.backbone.forward_two(x, train).1)
    }

    /// Scores [N] of pooled features.
    pub fn head(&self, features: &Tensor) -> Tensor {
        features.apply(&self.fc).reshape([-1])
    }

    /// Scores [N] of a normalised NCHW batch.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.head(&self.features(x, train))
    }

    /// The network prepared for eval-mode forwards without gradients (BatchNorm folded where the
    /// backbone has any). A snapshot of the current weights.
    pub fn inference(&self) -> RegressorInference<'_> {
        RegressorInference {
            model: self,
            fused: self.backbone.fuse(),
        }
    }
}

/// Global average pooling [N, C, H, W] → [N, C].
fn gap(m: &Tensor) -> Tensor {
    m.mean_dim(&[2i64, 3][..], false, m.kind())
}

/// See [`PlainRegressor::inference`].
pub struct RegressorInference<'a> {
    model: &'a PlainRegressor,
    fused: Option<Box<dyn FrozenBackbone>>,
}

impl RegressorInference<'_> {
    /// Pooled features (eval mode, no gradients).
    pub fn features(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| match &self.fused {
            Some(f) => gap(&f.forward_two(x).1),
            None => self.model.features(x, false),
        })
    }

    /// Scores [N] (eval mode, no gradients).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let f = self.features(x);
        tch::no_grad(|| self.model.head(&f))
    }
}
