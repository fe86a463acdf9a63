//! DBCNN (Zhang, Ma, Yan, Deng & Wang, "Blind image quality assessment using a deep bilinear
//! convolutional neural network", IEEE TCSVT 2020): two streams on the same image — F-CNN, the
//! convolutional part of an ImageNet network (VGG-16 without its last max pool: conv5_3 + ReLU,
//! 512 channels at stride 16), and S-CNN ([`super::scnn`], 128 channels at stride 16) — combined
//! by bilinear pooling (eq. 4–5: the outer product of the two channel vectors averaged over the
//! positions), a square root and L2 normalisation, then one linear layer to the score.
//!
//! Follows the authors' `DBCNN.py` (github.com/zwx8981/DBCNN-PyTorch) and pyiqa's `dbcnn_arch.py`:
//! when the two maps differ in size (odd input sizes: VGG's pools round down, S-CNN's stride-2
//! convolutions round up) the S-CNN map is resized to the F-CNN's by bilinear interpolation with
//! aligned corners; the root is `sqrt(x + 1e-8)` — the paper's signed square root, since both
//! streams end in a ReLU and every pooled entry is ≥ 0; `fc` is Kaiming-normal with zero bias.
//!
//! **Stand-in F-CNN.** Any registered backbone can be the F-CNN (its last map: [`Backbone::last_map`]).
//! VGG-16 is the paper's, but its ImageNet weights are not obtainable here; EfficientNet-Lite0's
//! are, so `fcnn = "efficientnet-lite0"` is the documented stand-in: its last stage (head
//! convolution + BN + ReLU6, 1280 channels at stride 32; the S-CNN map is resized down to it),
//! which gives a 1280·128 = 163,840-long descriptor instead of VGG-16's 512·128 = 65,536.
//!
//! Variables: F-CNN under `backbone.` (its published names, e.g. torchvision's `features.28.weight`)
//! and S-CNN under `scnn.features.` (the authors' names), both in the backbone group; `fc` in the
//! heads group. pyiqa's checkpoints name them `features1.*`, `features2.*` and `fc.*`.
//! Training (the paper's two phases): `fc` alone with both streams frozen, then everything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::Tensor;

use super::backbone::{Backbone, FrozenBackbone};
use super::linearity::{BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};
use super::scnn::{FusedScnnFeatures, ScnnFeatures, FEATURE_CHANNELS};
use super::error::ModelError;
use super::iqa::{Arch, EvalForward, EvalPath, IqaModel};
use super::weights::{self, WeightsError};
use super::{BackboneName, ModelConfig};

/// Variable-name prefix of the S-CNN stream.
pub const SCNN_PREFIX: &str = "scnn";

/// What defines a DBCNN network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbcnnConfig {
    /// The F-CNN: `vgg16` as the paper, or a stand-in (`efficientnet-lite0`).
    #[serde(default = "default_fcnn")]
    pub fcnn: BackboneName,
    /// Stochastic-depth rate of an EfficientNet F-CNN in training mode.
    #[serde(default = "default_drop_connect")]
    pub drop_connect: f64,
    /// The pre-trained S-CNN (`normiqa pretrain-scnn`); loaded with the F-CNN's ImageNet weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scnn_weights: Option<PathBuf>,
}

impl DbcnnConfig {
    /// The DBCNN of a run's model configuration (`backbone` is the F-CNN).
    pub fn of(m: &ModelConfig) -> Self {
        DbcnnConfig {
            fcnn: m.backbone,
            drop_connect: m.drop_connect,
            scnn_weights: m.scnn_weights.clone(),
        }
    }
}

fn default_fcnn() -> BackboneName {
    BackboneName::Vgg16
}
fn default_drop_connect() -> f64 {
    0.2
}

impl Default for DbcnnConfig {
    fn default() -> Self {
        DbcnnConfig {
            fcnn: default_fcnn(),
            drop_connect: default_drop_connect(),
            scnn_weights: None,
        }
    }
}

/// Bilinear pooling of two non-negative maps [N, C1, H, W] and [N, C2, H', W'] (the second is
/// resized to H×W when they differ): `vec(X1·X2ᵀ)/(H·W)`, square root, L2 normalisation → [N, C1·C2].
pub fn bilinear_pool(x1: &Tensor, x2: &Tensor) -> Tensor {
    let s = x1.size();
    let (n, c1, h, w) = (s[0], s[1], s[2], s[3]);
    let x2 = if x2.size()[2..] == [h, w] {
        x2.shallow_clone()
    } else {
        x2.upsample_bilinear2d([h, w], true, None, None)
    };
    let c2 = x2.size()[1];
    let a = x1.reshape([n, c1, h * w]);
    let b = x2.reshape([n, c2, h * w]);
    let x = (a.bmm(&b.transpose(1, 2)) / (h * w) as f64).reshape([n, c1 * c2]);
    let x = (x + 1e-8).sqrt();
    let norm = x.norm_scalaropt_dim(2, [1i64], true).clamp_min(1e-12);
    x / norm
}

/// The DBCNN network.
#[derive(Debug)]
pub struct Dbcnn {
    pub config: DbcnnConfig,
    pub fcnn: Box<dyn Backbone>,
    pub scnn: ScnnFeatures,
    pub fc: nn::Linear,
}

impl Dbcnn {
    pub fn new(vs: &nn::VarStore, config: DbcnnConfig) -> Self {
        let root = vs.root();
        let bp = root.set_group(BACKBONE_GROUP);
        let fcnn = config
            .fcnn
            .build(&(&bp / BACKBONE_PREFIX), config.drop_connect);
        let scnn = ScnnFeatures::new(&(&bp / SCNN_PREFIX));
        let len = fcnn.channels()[1] * FEATURE_CHANNELS;
        let fc = nn::linear(
            root.set_group(HEADS_GROUP) / "fc",
            len,
            1,
            nn::LinearConfig {
                ws_init: nn::init::DEFAULT_KAIMING_NORMAL,
                bs_init: Some(Init::Const(0.0)),
                bias: true,
            },
        );
        Dbcnn {
            config,
            fcnn,
            scnn,
            fc,
        }
    }

    /// Length of the pooled descriptor (F-CNN channels × 128).
    pub fn feature_len(&self) -> i64 {
        self.fcnn.channels()[1] * FEATURE_CHANNELS
    }

    /// The bilinear descriptor [N, C1·128] of a normalised NCHW batch: everything before `fc`,
    /// what a frozen-streams phase can cache. `train`: batch statistics in the streams' BatchNorms.
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        bilinear_pool(&self.fcnn.last_map(x, train), &self.scnn.forward(x, train))
    }

    /// Scores [N] of descriptors.
    pub fn head(&self, features: &Tensor) -> Tensor {
        features.apply(&self.fc).reshape([-1])
    }

    /// Scores [N] of a normalised NCHW batch.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.head(&self.features(x, train))
    }

    /// The network prepared for eval-mode forwards without gradients (BatchNorms folded into the
    /// convolutions). A snapshot of the current weights.
    pub fn inference(&self) -> DbcnnInference<'_> {
        DbcnnInference {
            model: self,
            fcnn: self.fcnn.fuse(),
            scnn: self.scnn.fuse(),
        }
    }
}

/// See [`Dbcnn::inference`].
pub struct DbcnnInference<'a> {
    model: &'a Dbcnn,
    fcnn: Option<Box<dyn FrozenBackbone>>,
    scnn: FusedScnnFeatures,
}

impl DbcnnInference<'_> {
    /// The bilinear descriptor (eval mode, no gradients).
    pub fn features(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            // A backbone that folds (ResNet, EfficientNet) ends in a convolution: its last map is
            // its level-7 map. VGG and AlexNet do not fold and keep their own `last_map`.
            let x1 = match &self.fcnn {
                Some(f) => f.forward_two(x).1,
                None => self.model.fcnn.last_map(x, false),
            };
            bilinear_pool(&x1, &self.scnn.forward(x))
        })
    }

    /// Scores [N] (eval mode, no gradients).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let f = self.features(x);
        tch::no_grad(|| self.model.head(&f))
    }
}

/// Loads the pre-trained S-CNN (`normiqa pretrain-scnn`'s file: exactly the `scnn.*` variables).
pub fn load_scnn(vs: &nn::VarStore, file: &Path) -> Result<usize, WeightsError> {
    let prefix = format!("{SCNN_PREFIX}.");
    weights::load_safetensors(vs, file, |n| n.starts_with(&prefix))
}

impl IqaModel for Dbcnn {
    fn arch(&self) -> Arch {
        Arch::Dbcnn
    }
    fn backbone(&self) -> &dyn Backbone {
        self.fcnn.as_ref()
    }
    fn feature_config(&self) -> ModelConfig {
        ModelConfig {
            backbone: self.config.fcnn,
            drop_connect: self.config.drop_connect,
            scnn_weights: self.config.scnn_weights.clone(),
            ..ModelConfig::default()
        }
    }
    fn tap_widths(&self) -> Vec<i64> {
        vec![self.feature_len()]
    }
    /// The bilinear descriptor: the one tap (what the first phase, `fc` alone, caches).
    fn taps(&self, x: &Tensor, train_backbone: bool) -> Vec<Tensor> {
        vec![self.features(x, train_backbone)]
    }
    fn heads(&self, taps: &[Tensor], _train: bool) -> Vec<Tensor> {
        vec![self.head(&taps[0])]
    }
    fn eval_path(&self) -> EvalPath<'_> {
        EvalPath::new(self.inference())
    }
    /// Both streams: F-CNN (`backbone.*`) and S-CNN (`scnn.*`).
    fn is_frozen_with_backbone(&self, name: &str) -> bool {
        super::iqa::is_backbone_var(name)
            || name.strip_prefix(SCNN_PREFIX).is_some_and(|r| r.starts_with('.'))
    }
}

impl EvalForward for DbcnnInference<'_> {
    fn taps(&self, x: &Tensor) -> Vec<Tensor> {
        vec![self.features(x)]
    }
    fn outputs(&self, x: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        Ok(vec![self.forward(x)])
    }
}
