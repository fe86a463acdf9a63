//! Backbones: ImageNet networks that return the feature maps of their last two stages.
//! One file per family; [`super::registry`] maps names to builders.

pub mod efficientnet_lite;
pub mod fused;
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
    /// The last convolutional feature map without a final max-pooling (VGG's `features[:-1]`,
    /// DBCNN's F-CNN); the level-7 map for backbones that end in a convolution.
    fn last_map(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_two(x, train).1
    }
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
