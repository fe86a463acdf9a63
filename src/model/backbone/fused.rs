//! Inference-only backbones: every convolution followed by a BatchNorm is folded into one
//! convolution with a bias, and activations run in place. For eval-mode forwards without
//! gradients (feature extraction of a frozen backbone, validation, `predict`), where it saves one
//! pass over every activation map per convolution.
//!
//! Folding (eval-mode BatchNorm with running statistics μ, σ², scale γ, shift β):
//! `γ·(W∗x + c − μ)/√(σ²+ε) + β = (s·W)∗x + (β + s·(c − μ))`, `s = γ/√(σ²+ε)` per output channel.
//! Built from the live weights each time it is requested, so it never goes stale.

use tch::{nn, Kind, Tensor};

/// A frozen backbone: eval mode, no gradients, (level-6 map, level-7 map) as [`super::Backbone`].
pub trait FrozenBackbone: Send {
    fn forward_two(&self, x: &Tensor) -> (Tensor, Tensor);
    /// Every folded convolution (to convert their weights: [`at_kind`]).
    fn convs_mut(&mut self) -> Vec<&mut FusedConv>;
}

/// `backbone` running in `kind` (e.g. bf16): its folded weights (folded in fp32, so rounded
/// once) converted to `kind`, its input converted on the way in and its two maps returned as
/// fp32, so that pooling and heads run in fp32 as trained.
pub fn at_kind(mut backbone: Box<dyn FrozenBackbone>, kind: Kind) -> Box<dyn FrozenBackbone> {
    if kind == Kind::Float {
        return backbone;
    }
    for c in backbone.convs_mut() {
        c.w = c.w.to_kind(kind);
        c.b = c.b.to_kind(kind);
    }
    Box::new(AtKind {
        inner: backbone,
        kind,
    })
}

/// See [`at_kind`].
struct AtKind {
    inner: Box<dyn FrozenBackbone>,
    kind: Kind,
}

impl FrozenBackbone for AtKind {
    fn forward_two(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (m6, m7) = self.inner.forward_two(&x.to_kind(self.kind));
        (m6.to_kind(Kind::Float), m7.to_kind(Kind::Float))
    }
    fn convs_mut(&mut self) -> Vec<&mut FusedConv> {
        self.inner.convs_mut()
    }
}

/// A convolution with its BatchNorm folded in.
#[derive(Debug)]
pub struct FusedConv {
    w: Tensor,
    b: Tensor,
    /// Per output channel, the mean (β) and standard deviation (|γ|) of the output under the
    /// BatchNorm's running statistics (what the int8 path's data-free ranges use:
    /// [`super::quantized`]).
    mean: Tensor,
    std: Tensor,
    stride: i64,
    padding: i64,
    groups: i64,
}

impl FusedConv {
    /// Folds `bn` (epsilon `eps`) into `conv` (which must have been built with this stride,
    /// symmetric padding and groups: tch keeps a convolution's configuration private).
    pub fn fold(
        conv: &nn::Conv2D,
        bn: &nn::BatchNorm,
        eps: f64,
        stride: i64,
        padding: i64,
        groups: i64,
    ) -> Self {
        tch::no_grad(|| {
            let mut s = (&bn.running_var + eps).rsqrt();
            if let Some(g) = &bn.ws {
                s *= g;
            }
            let mut shift = -&bn.running_mean * &s;
            if let Some(c) = &conv.bs {
                shift += c * &s;
            }
            if let Some(beta) = &bn.bs {
                shift += beta;
            }
            let w = &conv.ws * s.view([-1, 1, 1, 1]);
            let ones = Tensor::ones_like(&bn.running_mean);
            FusedConv {
                w,
                b: shift,
                mean: bn.bs.as_ref().map_or_else(|| ones.zeros_like(), |b| b.detach().copy()),
                std: bn.ws.as_ref().map_or(ones, |g| g.detach().abs()),
                stride,
                padding,
                groups,
            }
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.w,
            Some(&self.b),
            [self.stride],
            [self.padding],
            [1],
            self.groups,
        )
    }

    /// Kernel size (square kernels only in these backbones).
    pub fn kernel(&self) -> i64 {
        self.w.size()[2]
    }

    pub fn stride(&self) -> i64 {
        self.stride
    }

    pub fn groups(&self) -> i64 {
        self.groups
    }

    /// The folded weights and bias.
    pub fn weights(&self) -> (&Tensor, &Tensor) {
        (&self.w, &self.b)
    }

    /// The output's per-channel mean and standard deviation under the BatchNorm's statistics.
    pub fn output_statistics(&self) -> (&Tensor, &Tensor) {
        (&self.mean, &self.std)
    }
}
