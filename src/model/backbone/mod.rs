//! Backbones: ImageNet networks that return the feature maps of their last two stages.
//! One file per family; [`super::registry`] maps names to builders.

pub mod efficientnet_lite;
pub mod fused;
pub mod quantized;
pub mod resnet;
pub mod vgg;

use tch::{nn, Tensor};

pub use fused::FrozenBackbone;

/// An ImageNet network cut into the two feature maps LinearityIQA pools ("level 6" and "level 7").
pub trait Backbone: std::fmt::Debug + Send {
    /// Runs the network on a normalised NCHW batch; returns (level-6 map, level-7 map).
    fn forward_two(&self, x: &Tensor, train: bool) -> (Tensor, Tensor);
    /// Channels of the two maps.
    fn channels(&self) -> [i64; 2];
    /// Prefixes of pretrained-weight names that the backbone does not use (classifier layers).
    fn ignored_weights(&self) -> &'static [&'static str];
    /// The network with BatchNorm folded into its convolutions, for eval-mode forwards without
    /// gradients ([`fused`]); `None` where there is nothing to fold (VGG, AlexNet).
    fn fuse(&self) -> Option<Box<dyn FrozenBackbone>> {
        None
    }
    /// The folded network in int8 ([`quantized`]); `None` for the backbones it is not built for
    /// (all but EfficientNet-Lite).
    fn fuse_int8(&self) -> Option<Result<Box<dyn FrozenBackbone>, quantized::QuantError>> {
        None
    }
    /// The last convolutional feature map without a final max-pooling (VGG's `features[:-1]`,
    /// DBCNN's F-CNN); the level-7 map for backbones that end in a convolution.
    fn last_map(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_two(x, train).1
    }
    /// The backbone cut after its first blocks, for partial fine-tuning (`freeze_blocks`);
    /// `None` where it cannot be cut (only EfficientNet-Lite can).
    fn cut(&self) -> Option<&dyn Cut> {
        None
    }
}

/// A backbone whose stem and first `k` blocks can be frozen, computed once (eval-mode
/// BatchNorm) and kept, while the later blocks train (partial fine-tuning,
/// [`crate::model::partial`]). The blocks are counted in order of the forward pass and the
/// last one is the convolution that makes the level-7 map (EfficientNet-Lite0: 16 MBConv blocks
/// and the head convolution, 17); `k` runs from 1 (the stem and block 0) to [`Cut::blocks`]
/// (everything: the level-7 map itself).
pub trait Cut {
    /// How many blocks can be frozen.
    fn blocks(&self) -> usize;
    /// The block whose output is the level-6 map.
    fn level6_block(&self) -> usize;
    /// Channels of the output of the first `k` blocks.
    fn channels_after(&self, k: usize) -> i64;
    /// The stem and the first `k` blocks in eval mode, without gradients, with BatchNorm
    /// folded: a snapshot of the current weights.
    fn frozen_prefix(&self, k: usize) -> Box<dyn FrozenPrefix>;
    /// The same in eval mode with unfolded BatchNorm (what the last blocks see when the whole
    /// network runs with the first `k` blocks in eval mode).
    fn prefix(&self, x: &Tensor, k: usize) -> PrefixMaps;
    /// The blocks after the first `k` on `x`, the output of block `k - 1`: (the level-6 map
    /// when it comes after the prefix, the level-7 map).
    fn suffix(&self, x: &Tensor, k: usize, train: bool) -> (Option<Tensor>, Tensor);
    /// Whether the backbone variable `name` (relative to the backbone, e.g.
    /// `_blocks.3._bn1.weight`) belongs to the stem or the first `k` blocks.
    fn in_prefix(&self, name: &str, k: usize) -> bool;
}

/// What a frozen prefix computes: the output of its last block, and the level-6 map when it
/// lies in the prefix.
pub struct PrefixMaps {
    pub map: Tensor,
    pub level6: Option<Tensor>,
}

/// A frozen prefix ([`Cut::frozen_prefix`]).
pub trait FrozenPrefix: Send {
    fn forward(&self, x: &Tensor) -> PrefixMaps;
}

/// A backbone that exposes the end of each of its four resolution stages (strides 4, 8, 16 and
/// 32 of the input), for multi-scale models (HyperIQA's local-distortion-aware features).
pub trait Stages: Backbone {
    /// Runs the network on a normalised NCHW batch; returns the four stage maps, finest first.
    fn stages(&self, x: &Tensor, train: bool) -> [Tensor; 4];
    /// Channels of the four stage maps.
    fn stage_channels(&self) -> [i64; 4];
}

/// BatchNorm2d with explicit eps and momentum (PyTorch convention: running = (1−m)·running + m·batch).
pub(crate) fn bn2d<'a, P: std::borrow::Borrow<nn::Path<'a>>>(
    p: P,
    c: i64,
    eps: f64,
    momentum: f64,
) -> nn::BatchNorm {
    nn::batch_norm2d(
        p,
        c,
        nn::BatchNormConfig {
            eps,
            momentum,
            ..Default::default()
        },
    )
}
