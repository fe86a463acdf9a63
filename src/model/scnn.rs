//! S-CNN, the synthetic-distortion stream of DBCNN (Zhang, Ma, Yan, Deng & Wang, "Blind image
//! quality assessment using a deep bilinear convolutional neural network", IEEE TCSVT 2020,
//! §III-A): a small CNN pre-trained to classify the distortion type and level of synthetically
//! distorted images (the authors: 39 classes of Waterloo Exploration + PASCAL VOC images).
//!
//! Layout and parameter names as the authors' `SCNN.py` (github.com/zwx8981/DBCNN-PyTorch; the
//! same in pyiqa's `dbcnn_arch.py`): `features` = nine 3×3 convolution–BatchNorm–ReLU layers
//! (48, 48, 64, 64, 64, 64, 128, 128, 128 channels; stride 2 in layers 2, 4, 6 and 9, so stride
//! 16 overall), global average pooling, `projection` = two 1×1 convolution–BatchNorm–ReLU layers
//! (256 channels), `classifier` = Linear(256, classes). Module indices are kept in the names
//! (`features.0` conv, `features.1` BN, `features.3` conv, ...), so the authors' `scnn.pkl` (a
//! DataParallel state dict: `module.` prefix, which the `.pth` loader strips) loads by name.
//! Initialisation as the authors' `weight_init`: Kaiming-normal weights (fan-in, ReLU gain),
//! zero biases, BatchNorm γ = 1, β = 0.

use tch::nn::{self, Init};
use tch::Tensor;

use super::backbone::{bn2d, fused::FusedConv};

/// Classes of the authors' pre-training (their `num_class`).
pub const AUTHORS_CLASSES: i64 = 39;
/// Channels of the feature map DBCNN pools (the output of `features`).
pub const FEATURE_CHANNELS: i64 = 128;
/// (in, out, stride) of the nine 3×3 layers of `features`.
const FEATURES: [(i64, i64, i64); 9] = [
    (3, 48, 1),
    (48, 48, 2),
    (48, 64, 1),
    (64, 64, 2),
    (64, 64, 1),
    (64, 64, 2),
    (64, 128, 1),
    (128, 128, 1),
    (128, 128, 2),
];
const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

const KAIMING_NORMAL: Init = nn::init::DEFAULT_KAIMING_NORMAL;

/// Convolution (with bias) → BatchNorm → ReLU; `p` is the Sequential, `i` the convolution's index.
#[derive(Debug)]
struct ConvBnRelu {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    stride: i64,
    padding: i64,
}

impl ConvBnRelu {
    fn new(p: &nn::Path, i: usize, c_in: i64, c_out: i64, k: i64, stride: i64) -> Self {
        let padding = k / 2;
        let cfg = nn::ConvConfig {
            stride,
            padding,
            ws_init: KAIMING_NORMAL,
            bs_init: Init::Const(0.0),
            ..Default::default()
        };
        ConvBnRelu {
            conv: nn::conv2d(p / i, c_in, c_out, k, cfg),
            bn: bn2d(p / (i + 1), c_out, BN_EPS, BN_MOMENTUM),
            stride,
            padding,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.conv).apply_t(&self.bn, train).relu()
    }

    fn fold(&self) -> FusedConv {
        FusedConv::fold(&self.conv, &self.bn, BN_EPS, self.stride, self.padding, 1)
    }
}

/// The `features` part of S-CNN: what DBCNN keeps of it.
#[derive(Debug)]
pub struct ScnnFeatures {
    layers: Vec<ConvBnRelu>,
}

impl ScnnFeatures {
    /// Variables `features.N.*` under `p`.
    pub fn new(p: &nn::Path) -> Self {
        let fp = p / "features";
        let layers = FEATURES
            .iter()
            .enumerate()
            .map(|(i, &(c_in, c_out, s))| ConvBnRelu::new(&fp, 3 * i, c_in, c_out, 3, s))
            .collect();
        ScnnFeatures { layers }
    }

    /// The 128-channel map at stride 16 (each stride-2 layer: ⌈size / 2⌉).
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.layers
            .iter()
            .fold(x.shallow_clone(), |x, l| l.forward(&x, train))
    }

    /// The same network with BatchNorm folded into the convolutions (eval mode, no gradients).
    pub fn fuse(&self) -> FusedScnnFeatures {
        FusedScnnFeatures {
            convs: tch::no_grad(|| self.layers.iter().map(ConvBnRelu::fold).collect()),
        }
    }
}

/// [`ScnnFeatures`] for inference: folded convolutions, in-place ReLUs.
pub struct FusedScnnFeatures {
    convs: Vec<FusedConv>,
}

impl FusedScnnFeatures {
    pub fn forward(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            self.convs.iter().fold(x.shallow_clone(), |x, c| {
                let mut y = c.forward(&x);
                let _ = y.relu_();
                y
            })
        })
    }
}

/// The whole S-CNN classifier, for its pre-training.
#[derive(Debug)]
pub struct Scnn {
    pub features: ScnnFeatures,
    projection: [ConvBnRelu; 2],
    classifier: nn::Linear,
}

impl Scnn {
    /// Variables `features.*`, `projection.*`, `classifier.*` under `p`.
    pub fn new(p: &nn::Path, classes: i64) -> Self {
        let pp = p / "projection";
        Scnn {
            features: ScnnFeatures::new(p),
            projection: [
                ConvBnRelu::new(&pp, 0, FEATURE_CHANNELS, 256, 1, 1),
                ConvBnRelu::new(&pp, 3, 256, 256, 1, 1),
            ],
            classifier: nn::linear(
                p / "classifier",
                256,
                classes,
                nn::LinearConfig {
                    ws_init: KAIMING_NORMAL,
                    bs_init: Some(Init::Const(0.0)),
                    bias: true,
                },
            ),
        }
    }

    /// Class logits [N, classes] of a normalised NCHW batch. Global average pooling (the
    /// authors' `AvgPool2d(14)` at their 224×224 input; pyiqa's adaptive pooling at any size).
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let f = self.features.forward(x, train).adaptive_avg_pool2d([1, 1]);
        let f = self.projection.iter().fold(f, |f, l| l.forward(&f, train));
        f.flatten(1, -1).apply(&self.classifier)
    }
}
