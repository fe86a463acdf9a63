//! ResNet-18/34/50 and ResNeXt-101 32x8d (He et al., CVPR 2016; Xie et al., CVPR 2017) in
//! torchvision's layout and parameter names (`conv1`, `bn1`, `layer1.0.conv1`, `downsample.0`, ...),
//! so a torchvision `.pth` state dict loads by name. Taps for LinearityIQA as the reference
//! (`IQAmodel.py`, children 6 and 7): the outputs of `layer3` and `layer4`.

use tch::nn;
use tch::Tensor;

use super::fused::{FrozenBackbone, FusedConv};
use super::{bn2d, Backbone, Stages};

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

/// A bias-free convolution with the configuration kept (tch keeps its own private), so that it
/// can be folded with its BatchNorm for inference.
#[derive(Debug)]
struct Conv {
    conv: nn::Conv2D,
    stride: i64,
    padding: i64,
    groups: i64,
}

impl nn::Module for Conv {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.apply(&self.conv)
    }
}

impl Conv {
    fn fold(&self, bn: &nn::BatchNorm) -> FusedConv {
        FusedConv::fold(
            &self.conv,
            bn,
            BN_EPS,
            self.stride,
            self.padding,
            self.groups,
        )
    }
}

fn conv(
    p: nn::Path,
    c_in: i64,
    c_out: i64,
    k: i64,
    stride: i64,
    padding: i64,
    groups: i64,
) -> Conv {
    let cfg = nn::ConvConfig {
        stride,
        padding,
        groups,
        bias: false,
        ..Default::default()
    };
    Conv {
        conv: nn::conv2d(p, c_in, c_out, k, cfg),
        stride,
        padding,
        groups,
    }
}

#[derive(Debug)]
struct Block {
    convs: Vec<(Conv, nn::BatchNorm)>,
    downsample: Option<(Conv, nn::BatchNorm)>,
}

impl Block {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.shallow_clone();
        let last = self.convs.len() - 1;
        for (i, (c, bn)) in self.convs.iter().enumerate() {
            y = y.apply(c).apply_t(bn, train);
            if i < last {
                y = y.relu();
            }
        }
        let identity = match &self.downsample {
            Some((c, bn)) => x.apply(c).apply_t(bn, train),
            None => x.shallow_clone(),
        };
        (y + identity).relu()
    }

    fn fuse(&self) -> FusedBlock {
        FusedBlock {
            convs: self.convs.iter().map(|(c, bn)| c.fold(bn)).collect(),
            downsample: self.downsample.as_ref().map(|(c, bn)| c.fold(bn)),
        }
    }
}

/// [`Block`] with folded BatchNorms and in-place activations (inference).
struct FusedBlock {
    convs: Vec<FusedConv>,
    downsample: Option<FusedConv>,
}

impl FusedBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.shallow_clone();
        let last = self.convs.len() - 1;
        for (i, c) in self.convs.iter().enumerate() {
            y = c.forward(&y);
            if i < last {
                let _ = y.relu_();
            }
        }
        match &self.downsample {
            Some(c) => y += c.forward(x),
            None => y += x,
        }
        let _ = y.relu_();
        y
    }
}

/// A ResNet for inference (see [`super::fused`]).
struct FusedResNet {
    conv1: FusedConv,
    layers: [Vec<FusedBlock>; 4],
}

impl FrozenBackbone for FusedResNet {
    fn forward_two(&self, x: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let mut x = self.conv1.forward(x);
            let _ = x.relu_();
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
            let mut taps = Vec::with_capacity(2);
            for (li, layer) in self.layers.iter().enumerate() {
                for b in layer {
                    x = b.forward(&x);
                }
                if li >= 2 {
                    taps.push(x.shallow_clone());
                }
            }
            let x7 = taps.pop().unwrap();
            let x6 = taps.pop().unwrap();
            (x6, x7)
        })
    }
    fn convs_mut(&mut self) -> Vec<&mut FusedConv> {
        let mut v = vec![&mut self.conv1];
        for b in self.layers.iter_mut().flatten() {
            v.extend(b.convs.iter_mut());
            v.extend(b.downsample.as_mut());
        }
        v
    }
}

/// Which residual block and how wide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResNetSpec {
    pub layers: [usize; 4],
    pub bottleneck: bool,
    pub groups: i64,
    pub width_per_group: i64,
}

impl ResNetSpec {
    pub const RESNET18: Self = ResNetSpec {
        layers: [2, 2, 2, 2],
        bottleneck: false,
        groups: 1,
        width_per_group: 64,
    };
    pub const RESNET34: Self = ResNetSpec {
        layers: [3, 4, 6, 3],
        bottleneck: false,
        groups: 1,
        width_per_group: 64,
    };
    pub const RESNET50: Self = ResNetSpec {
        layers: [3, 4, 6, 3],
        bottleneck: true,
        groups: 1,
        width_per_group: 64,
    };
    pub const RESNEXT101_32X8D: Self = ResNetSpec {
        layers: [3, 4, 23, 3],
        bottleneck: true,
        groups: 32,
        width_per_group: 8,
    };

    fn expansion(&self) -> i64 {
        if self.bottleneck {
            4
        } else {
            1
        }
    }
}

#[derive(Debug)]
pub struct ResNet {
    conv1: Conv,
    bn1: nn::BatchNorm,
    layers: [Vec<Block>; 4],
    channels: [i64; 2],
}

impl ResNet {
    pub fn new(p: &nn::Path, spec: ResNetSpec) -> Self {
        let conv1 = conv(p / "conv1", 3, 64, 7, 2, 3, 1);
        let bn1 = bn2d(p / "bn1", 64, BN_EPS, BN_MOMENTUM);
        let mut inplanes = 64;
        let mut make_layer = |name: &str, planes: i64, blocks: usize, stride: i64| {
            let lp = p / name;
            let exp = spec.expansion();
            (0..blocks)
                .map(|i| {
                    let bp = &lp / i;
                    let s = if i == 0 { stride } else { 1 };
                    let downsample =
                        (i == 0 && (stride != 1 || inplanes != planes * exp)).then(|| {
                            let dp = &bp / "downsample";
                            (
                                conv(&dp / 0, inplanes, planes * exp, 1, stride, 0, 1),
                                bn2d(&dp / 1, planes * exp, BN_EPS, BN_MOMENTUM),
                            )
                        });
                    let convs = if spec.bottleneck {
                        let width = planes * spec.width_per_group / 64 * spec.groups;
                        vec![
                            (
                                conv(&bp / "conv1", inplanes, width, 1, 1, 0, 1),
                                bn2d(&bp / "bn1", width, BN_EPS, BN_MOMENTUM),
                            ),
                            (
                                conv(&bp / "conv2", width, width, 3, s, 1, spec.groups),
                                bn2d(&bp / "bn2", width, BN_EPS, BN_MOMENTUM),
                            ),
                            (
                                conv(&bp / "conv3", width, planes * 4, 1, 1, 0, 1),
                                bn2d(&bp / "bn3", planes * 4, BN_EPS, BN_MOMENTUM),
                            ),
                        ]
                    } else {
                        vec![
                            (
                                conv(&bp / "conv1", inplanes, planes, 3, s, 1, 1),
                                bn2d(&bp / "bn1", planes, BN_EPS, BN_MOMENTUM),
                            ),
                            (
                                conv(&bp / "conv2", planes, planes, 3, 1, 1, 1),
                                bn2d(&bp / "bn2", planes, BN_EPS, BN_MOMENTUM),
                            ),
                        ]
                    };
                    inplanes = planes * exp;
                    Block { convs, downsample }
                })
                .collect::<Vec<_>>()
        };
        let l1 = make_layer("layer1", 64, spec.layers[0], 1);
        let l2 = make_layer("layer2", 128, spec.layers[1], 2);
        let l3 = make_layer("layer3", 256, spec.layers[2], 2);
        let l4 = make_layer("layer4", 512, spec.layers[3], 2);
        let e = spec.expansion();
        ResNet {
            conv1,
            bn1,
            layers: [l1, l2, l3, l4],
            channels: [256 * e, 512 * e],
        }
    }
}

impl ResNet {
    /// conv1, bn1, ReLU and the 3×3 max pool (stride 4).
    fn stem(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu()
            .max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)
    }
}

impl Stages for ResNet {
    /// The outputs of `layer1` … `layer4`.
    fn stages(&self, x: &Tensor, train: bool) -> [Tensor; 4] {
        let mut x = self.stem(x, train);
        let mut out = Vec::with_capacity(4);
        for layer in self.layers.iter() {
            for b in layer {
                x = b.forward(&x, train);
            }
            out.push(x.shallow_clone());
        }
        out.try_into().expect("a ResNet has four layers")
    }

    fn stage_channels(&self) -> [i64; 4] {
        let c = self.channels[1];
        [c / 8, c / 4, c / 2, c]
    }
}

impl Backbone for ResNet {
    fn forward_two(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let mut x = self.stem(x, train);
        let mut taps = Vec::with_capacity(2);
        for (li, layer) in self.layers.iter().enumerate() {
            for b in layer {
                x = b.forward(&x, train);
            }
            if li >= 2 {
                taps.push(x.shallow_clone());
            }
        }
        let x7 = taps.pop().unwrap();
        let x6 = taps.pop().unwrap();
        (x6, x7)
    }

    fn channels(&self) -> [i64; 2] {
        self.channels
    }

    fn ignored_weights(&self) -> &'static [&'static str] {
        &["fc.weight", "fc.bias"]
    }

    fn fuse(&self) -> Option<Box<dyn FrozenBackbone>> {
        Some(Box::new(FusedResNet {
            conv1: self.conv1.fold(&self.bn1),
            layers: std::array::from_fn(|i| self.layers[i].iter().map(Block::fuse).collect()),
        }))
    }
}
