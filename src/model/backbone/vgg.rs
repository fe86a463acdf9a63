//! VGG-16 and AlexNet feature extractors in torchvision's layout (`features.N.weight`), with the
//! reference's taps (`IQAmodel.py`): VGG-16 modules 23 and 30 (pool4, pool5; 512 channels each),
//! AlexNet modules 9 and 12 (ReLU after conv4, pool5; 256 channels each).

use tch::nn;
use tch::Tensor;

use super::Backbone;

#[derive(Debug)]
enum Layer {
    Conv(nn::Conv2D),
    Relu,
    MaxPool { k: i64, s: i64 },
}

/// A torchvision `features` Sequential, with two tap indices.
#[derive(Debug)]
pub struct Plain {
    layers: Vec<Layer>,
    taps: [usize; 2],
    channels: [i64; 2],
}

impl Plain {
    fn build(
        p: &nn::Path,
        spec: &[(i64, i64, i64, i64)],
        pools: &[usize],
        pool: (i64, i64),
        taps: [usize; 2],
        channels: [i64; 2],
    ) -> Self {
        // spec: (c_out, kernel, stride, padding) per conv; each conv is followed by a ReLU; a max
        // pool follows the ReLU of the convs whose index is in `pools`.
        let fp = p / "features";
        let mut layers = Vec::new();
        let mut c_in = 3;
        for (ci, &(c_out, k, s, pad)) in spec.iter().enumerate() {
            let cfg = nn::ConvConfig {
                stride: s,
                padding: pad,
                ..Default::default()
            };
            layers.push(Layer::Conv(nn::conv2d(
                &fp / layers.len(),
                c_in,
                c_out,
                k,
                cfg,
            )));
            layers.push(Layer::Relu);
            if pools.contains(&ci) {
                layers.push(Layer::MaxPool {
                    k: pool.0,
                    s: pool.1,
                });
            }
            c_in = c_out;
        }
        Plain {
            layers,
            taps,
            channels,
        }
    }

    /// VGG-16 (configuration "D").
    pub fn vgg16(p: &nn::Path) -> Self {
        let c = |c| (c, 3, 1, 1);
        let spec = [
            c(64),
            c(64),
            c(128),
            c(128),
            c(256),
            c(256),
            c(256),
            c(512),
            c(512),
            c(512),
            c(512),
            c(512),
            c(512),
        ];
        Plain::build(p, &spec, &[1, 3, 6, 9, 12], (2, 2), [23, 30], [512, 512])
    }

    /// AlexNet (torchvision's single-GPU variant).
    pub fn alexnet(p: &nn::Path) -> Self {
        let spec = [
            (64, 11, 4, 2),
            (192, 5, 1, 2),
            (384, 3, 1, 1),
            (256, 3, 1, 1),
            (256, 3, 1, 1),
        ];
        Plain::build(p, &spec, &[0, 1, 4], (3, 2), [9, 12], [256, 256])
    }
}

impl Layer {
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Layer::Conv(c) => x.apply(c),
            Layer::Relu => x.relu(),
            Layer::MaxPool { k, s } => x.max_pool2d([*k, *k], [*s, *s], [0, 0], [1, 1], false),
        }
    }
}

impl Backbone for Plain {
    fn forward_two(&self, x: &Tensor, _train: bool) -> (Tensor, Tensor) {
        let mut x = x.shallow_clone();
        let mut out = Vec::with_capacity(2);
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x);
            if self.taps.contains(&i) {
                out.push(x.shallow_clone());
            }
            if i == self.taps[1] {
                break;
            }
        }
        let x7 = out.pop().unwrap();
        (out.pop().unwrap(), x7)
    }

    fn channels(&self) -> [i64; 2] {
        self.channels
    }

    fn ignored_weights(&self) -> &'static [&'static str] {
        &["classifier."]
    }

    /// Every layer but the final max pool: VGG-16's conv5_3 + ReLU (stride 16), AlexNet's conv5 + ReLU.
    fn last_map(&self, x: &Tensor, _train: bool) -> Tensor {
        let n = match self.layers.last() {
            Some(Layer::MaxPool { .. }) => self.layers.len() - 1,
            _ => self.layers.len(),
        };
        self.layers[..n]
            .iter()
            .fold(x.shallow_clone(), |x, l| l.forward(&x))
    }
}
