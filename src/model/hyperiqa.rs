//! HyperIQA (Su, Yan, Zhu, Zhang, Ge, Sun & Zhang, "Blindly assess image quality in the wild
//! guided by a self-adaptive hyper network", CVPR 2020): a backbone's four stage maps give
//!
//! - the **local distortion aware** (LDA) multi-scale vector, the target network's input: per
//!   stage 1–3 a 1×1 convolution (16, 32, 64 channels), 7×7 average pooling with stride 7 and a
//!   linear layer to 16 values; stage 4 pooled 7×7 and a linear layer to 176; concatenated → 224;
//! - the **hyper network**, from the last stage's semantic features (three 1×1 conv + ReLU,
//!   2048 → 1024 → 512 → 112 channels, 7×7): the weights of the target network's four hidden
//!   layers from 3×3 convolutions reshaped to (out, in) matrices, those of its output layer and
//!   all biases from linear layers on the average-pooled features;
//! - the **target network**, a per-image MLP 224 → 112 → 56 → 28 → 14 → 1 with sigmoids after the
//!   hidden layers, run on the LDA vector: the score.
//!
//! Sizes fix the input: 224×224 crops (7×7 last stage, 56×56 first). Training uses random crops,
//! testing the mean score over N crops ([`HyperIqa::forward_crops`]): random ones as the paper
//! and the authors' code (25 per image, after resizing every image to 512×384, height × width), or
//! pyiqa's evenly spaced grid ([`grid_crops`]).
//!
//! Layout and names follow the authors' `models.py` (github.com/SSL92/hyperIQA; pyiqa's
//! `hypernet_arch.py` is the same network with other names and a batched-matmul target network):
//! backbone under `backbone.` (torchvision names: the authors' `res.conv1` … `res.layer4`), the LDA
//! layers `lda{1..3}_pool.0`, `lda{1..4}_fc` (the authors' `res.lda*`), the hyper network
//! `conv1.{0,2,4}`, `fc{1..4}w_conv`, `fc5w_fc`, `fc{1..5}b_fc`. Initialisation as the authors:
//! Kaiming-normal weights for the LDA and weight/bias generators, PyTorch's defaults otherwise.
//!
//! **Stand-in backbone.** ResNet-50 is the paper's; its ImageNet weights are not obtainable here,
//! EfficientNet-Lite0's are: `backbone = "efficientnet-lite0"` uses the ends of its stride-4, -8
//! and -16 stages (blocks 2, 4, 10: 24, 40, 112 channels) and its head (1280 channels, 7×7), with
//! the same LDA widths, so the target network is unchanged. Any ResNet works too; VGG and AlexNet
//! do not (they have no four-stage split).
//!
//! Parameter groups: the backbone (group 1) and everything else (group 0). The authors train the
//! LDA layers at the backbone's rate and only the hyper network at 10× (Adam, lr 2e-5, weight
//! decay 5e-4, the rate ÷10 every 6 epochs and the ratio back to 1 after epoch 8).

use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::Tensor;

use super::backbone::{Backbone, Stages};
use super::error::ModelError;
use super::iqa::{Arch, EvalForward, EvalPath, IqaModel};
use super::linearity::{BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};
use super::{BackboneName, ModelConfig};

const MODEL: &str = "HyperIQA";
/// Side of the square crops the network takes.
pub const CROP: i64 = crate::run::model::HYPERIQA_CROP;
/// Values each of LDA stages 1–3 contributes to the target input.
const LDA_OUT: i64 = 16;
/// Length of the LDA vector, the target network's input.
const TARGET_IN: i64 = 224;
/// Channels of the hyper network's input features.
const HYPER_IN: i64 = 112;
/// Widths of the target network's layers (its input is [`TARGET_IN`]).
const TARGET_FC: [i64; 5] = [112, 56, 28, 14, 1];
/// Side of the last stage's map at a [`CROP`] input.
const FEATURE_SIZE: i64 = 7;
/// Output channels of the 1×1 convolutions of LDA stages 1–3.
const LDA_CONV: [i64; 3] = [16, 32, 64];
/// Cells left by the 7×7/7 pooling of the stage maps at a [`CROP`] input (56², 28², 14², 7²).
const LDA_CELLS: [i64; 4] = [64, 16, 4, 1];
const LDA_POOL: i64 = 7;

/// What defines a HyperIQA network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HyperIqaConfig {
    /// `resnet50` as the paper, or a stand-in (`efficientnet-lite0`, another ResNet).
    #[serde(default = "default_backbone")]
    pub backbone: BackboneName,
    /// Stochastic-depth rate of an EfficientNet backbone in training mode.
    #[serde(default = "default_drop_connect")]
    pub drop_connect: f64,
    /// Crops (an evenly spaced grid) whose mean score is an image's score at test.
    #[serde(default = "default_test_crops")]
    pub test_crops: usize,
}

fn default_test_crops() -> usize {
    25
}

impl HyperIqaConfig {
    /// The HyperIQA of a run's model configuration.
    pub fn of(m: &ModelConfig) -> Self {
        HyperIqaConfig {
            backbone: m.backbone,
            drop_connect: m.drop_connect,
            test_crops: m.test_crops,
        }
    }
}

fn default_backbone() -> BackboneName {
    BackboneName::ResNet50
}
fn default_drop_connect() -> f64 {
    0.2
}

impl Default for HyperIqaConfig {
    fn default() -> Self {
        HyperIqaConfig {
            backbone: default_backbone(),
            drop_connect: default_drop_connect(),
            test_crops: default_test_crops(),
        }
    }
}

/// Uniform(±1/√fan_in): PyTorch's default for the weights and biases of Linear and Conv2d.
fn torch_default(fan_in: i64) -> Init {
    let b = 1.0 / (fan_in as f64).sqrt();
    Init::Uniform { lo: -b, up: b }
}

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, kaiming: bool, bias: bool) -> nn::Conv2D {
    let fan_in = c_in * k * k;
    let cfg = nn::ConvConfig {
        padding: k / 2,
        bias,
        ws_init: if kaiming {
            nn::init::DEFAULT_KAIMING_NORMAL
        } else {
            torch_default(fan_in)
        },
        bs_init: torch_default(fan_in),
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

/// Linear with a Kaiming-normal weight and PyTorch's default bias (the authors' generators).
fn kaiming_linear(p: nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: nn::init::DEFAULT_KAIMING_NORMAL,
        bs_init: Some(torch_default(c_in)),
        bias: true,
    };
    nn::linear(p, c_in, c_out, cfg)
}

/// The local distortion aware layers.
#[derive(Debug)]
struct Lda {
    convs: Vec<nn::Conv2D>,
    fcs: Vec<nn::Linear>,
}

impl Lda {
    fn new(p: &nn::Path, stage_channels: [i64; 4]) -> Self {
        let convs = (0..3)
            .map(|i| {
                let cp = p / format!("lda{}_pool", i + 1) / 0;
                conv(cp, stage_channels[i], LDA_CONV[i], 1, true, false)
            })
            .collect();
        let mut fcs: Vec<nn::Linear> = (0..3)
            .map(|i| {
                let fp = p / format!("lda{}_fc", i + 1);
                kaiming_linear(fp, LDA_CONV[i] * LDA_CELLS[i], LDA_OUT)
            })
            .collect();
        fcs.push(kaiming_linear(
            p / "lda4_fc",
            stage_channels[3] * LDA_CELLS[3],
            TARGET_IN - 3 * LDA_OUT,
        ));
        Lda { convs, fcs }
    }

    /// The LDA vector [B, 224] of the four stage maps.
    fn forward(&self, stages: &[Tensor; 4]) -> Tensor {
        let parts: Vec<Tensor> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let s = match self.convs.get(i) {
                    Some(c) => s.apply(c),
                    None => s.shallow_clone(),
                };
                let k = [LDA_POOL, LDA_POOL];
                let pooled = s.avg_pool2d(k, k, [0, 0], false, true, None::<i64>);
                pooled.flatten(1, -1).apply(&self.fcs[i])
            })
            .collect();
        Tensor::cat(&parts, 1)
    }
}

/// The hyper network: last-stage features → the target network's weights and biases.
#[derive(Debug)]
struct HyperNet {
    conv1: Vec<nn::Conv2D>,
    weight_convs: Vec<nn::Conv2D>,
    weight_fc: nn::Linear,
    bias_fcs: Vec<nn::Linear>,
}

impl HyperNet {
    fn new(p: &nn::Path, c_last: i64) -> Self {
        let cp = p / "conv1";
        let conv1 = [(0, c_last, 1024), (2, 1024, 512), (4, 512, HYPER_IN)]
            .iter()
            .map(|&(i, a, b)| conv(&cp / i, a, b, 1, false, true))
            .collect();
        let ins = [TARGET_IN, TARGET_FC[0], TARGET_FC[1], TARGET_FC[2]];
        let weight_convs = (0..4)
            .map(|i| {
                let out = ins[i] * TARGET_FC[i] / (FEATURE_SIZE * FEATURE_SIZE);
                conv(
                    p / format!("fc{}w_conv", i + 1),
                    HYPER_IN,
                    out,
                    3,
                    true,
                    true,
                )
            })
            .collect();
        let bias_fcs = (0..5)
            .map(|i| kaiming_linear(p / format!("fc{}b_fc", i + 1), HYPER_IN, TARGET_FC[i]))
            .collect();
        HyperNet {
            conv1,
            weight_convs,
            weight_fc: kaiming_linear(p / "fc5w_fc", HYPER_IN, TARGET_FC[3]),
            bias_fcs,
        }
    }

    fn forward(&self, last: &Tensor) -> TargetNet {
        let h = self
            .conv1
            .iter()
            .fold(last.shallow_clone(), |h, c| h.apply(c).relu());
        let b = h.size()[0];
        let pooled = h.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        let mut weights: Vec<Tensor> = self
            .weight_convs
            .iter()
            .zip(TARGET_FC)
            .map(|(c, out)| h.apply(c).reshape([b, out, -1]))
            .collect();
        weights.push(pooled.apply(&self.weight_fc).reshape([b, 1, TARGET_FC[3]]));
        let biases = self.bias_fcs.iter().map(|l| pooled.apply(l)).collect();
        TargetNet { weights, biases }
    }
}

/// The target network the hyper network generated for each image of a batch: layer `i` has
/// weights [B, out, in] and biases [B, out].
#[derive(Debug)]
pub struct TargetNet {
    pub weights: Vec<Tensor>,
    pub biases: Vec<Tensor>,
}

impl TargetNet {
    /// Scores [B] of the LDA vectors [B, 224]: sigmoid after every layer but the last.
    pub fn forward(&self, v: &Tensor) -> Tensor {
        let last = self.weights.len() - 1;
        let mut x = v.unsqueeze(1);
        for (i, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            x = b.unsqueeze(1).baddbmm(&x, &w.transpose(1, 2), 1, 1);
            if i < last {
                x = x.sigmoid();
            }
        }
        x.reshape([-1])
    }
}

/// The HyperIQA network.
#[derive(Debug)]
pub struct HyperIqa {
    pub config: HyperIqaConfig,
    pub backbone: Box<dyn Stages>,
    lda: Lda,
    hyper: HyperNet,
}

impl HyperIqa {
    pub fn new(vs: &nn::VarStore, config: HyperIqaConfig) -> Result<Self, ModelError> {
        let root = vs.root();
        let bp = root.set_group(BACKBONE_GROUP) / BACKBONE_PREFIX;
        let backbone = config
            .backbone
            .build_stages(&bp, config.drop_connect)
            .ok_or_else(|| ModelError::UnsupportedBackbone {
                model: MODEL,
                backbone: config.backbone,
                supported: supported_backbones(),
            })?;
        let ch = backbone.stage_channels();
        let hp = root.set_group(HEADS_GROUP);
        Ok(HyperIqa {
            lda: Lda::new(&hp, ch),
            hyper: HyperNet::new(&hp, ch[3]),
            config,
            backbone,
        })
    }

    /// The LDA vector [B, 224] and the target network generated for each crop of a normalised
    /// [B, 3, 224, 224] batch. `train`: training mode of the backbone (BatchNorm, drop connect).
    pub fn target(&self, x: &Tensor, train: bool) -> Result<(Tensor, TargetNet), ModelError> {
        let s = x.size();
        if s.len() != 4 || s[2] != CROP || s[3] != CROP {
            return Err(ModelError::InputSize {
                model: MODEL,
                size: CROP,
                height: s.get(2).copied().unwrap_or(0),
                width: s.get(3).copied().unwrap_or(0),
            });
        }
        let stages = self.backbone.stages(x, train);
        Ok((self.lda.forward(&stages), self.hyper.forward(&stages[3])))
    }

    /// Scores [B] of a normalised [B, 3, 224, 224] batch of crops.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor, ModelError> {
        let (v, net) = self.target(x, train)?;
        Ok(net.forward(&v))
    }

    /// Scores [B] of whole images [B, 3, H, W]: the mean over the 224×224 crops at `offsets`
    /// (top, left) — the same crops of every image of the batch.
    pub fn forward_crops(
        &self,
        x: &Tensor,
        offsets: &[(i64, i64)],
        train: bool,
    ) -> Result<Tensor, ModelError> {
        if offsets.is_empty() {
            return Err(ModelError::NotPositive {
                what: "the number of crops",
                value: 0,
            });
        }
        let (h, w) = (x.size()[2], x.size()[3]);
        check_size(h, w)?;
        let mut crops = Vec::with_capacity(offsets.len());
        for &(top, left) in offsets {
            if !(0..=h - CROP).contains(&top) || !(0..=w - CROP).contains(&left) {
                return Err(ModelError::CropOutside {
                    size: CROP,
                    top,
                    left,
                    height: h,
                    width: w,
                });
            }
            crops.push(x.narrow(2, top, CROP).narrow(3, left, CROP));
        }
        let b = x.size()[0];
        let y = self.forward(&Tensor::cat(&crops, 0), train)?;
        Ok(y.reshape([offsets.len() as i64, b])
            .mean_dim(0, false, y.kind()))
    }

    /// Eval-mode forwards without gradients.
    pub fn inference(&self) -> HyperIqaInference<'_> {
        HyperIqaInference { model: self }
    }
}

/// See [`HyperIqa::inference`].
pub struct HyperIqaInference<'a> {
    model: &'a HyperIqa,
}

impl HyperIqaInference<'_> {
    /// Scores [B] of a [B, 3, 224, 224] batch of crops.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        tch::no_grad(|| self.model.forward(x, false))
    }

    /// Scores [B] of whole images: the mean over the crops at `offsets`.
    pub fn forward_crops(&self, x: &Tensor, offsets: &[(i64, i64)]) -> Result<Tensor, ModelError> {
        tch::no_grad(|| self.model.forward_crops(x, offsets, false))
    }
}

fn supported_backbones() -> String {
    let names: Vec<&str> = BackboneName::ALL
        .iter()
        .filter(|b| b.has_stages())
        .map(|b| b.as_str())
        .collect();
    names.join(", ")
}

fn check_size(h: i64, w: i64) -> Result<(), ModelError> {
    if h < CROP || w < CROP {
        return Err(ModelError::ImageTooSmall {
            model: MODEL,
            size: CROP,
            height: h,
            width: w,
        });
    }
    Ok(())
}

/// `n` crops of an `h`×`w` image at uniformly random positions (the paper's training and test
/// crops; torchvision's `RandomCrop`: top in 0..=h−224, left in 0..=w−224).
pub fn random_crops(
    h: i64,
    w: i64,
    n: usize,
    rng: &mut impl Rng,
) -> Result<Vec<(i64, i64)>, ModelError> {
    check_size(h, w)?;
    Ok((0..n)
        .map(|_| (rng.gen_range(0..=h - CROP), rng.gen_range(0..=w - CROP)))
        .collect())
}

/// `n` crops on an evenly spaced grid, row by row (pyiqa's `uniform_crop`): ⌈√n⌉ × ⌈√n⌉ positions
/// with steps ⌊(h−224)/⌊√n⌋⌋ and ⌊(w−224)/⌊√n⌋⌋, the first `n` kept.
pub fn grid_crops(h: i64, w: i64, n: usize) -> Result<Vec<(i64, i64)>, ModelError> {
    check_size(h, w)?;
    if n == 0 {
        return Err(ModelError::NotPositive {
            what: "the number of crops",
            value: 0,
        });
    }
    let root = (n as f64).sqrt();
    let (lo, hi) = (root.floor() as i64, root.ceil() as i64);
    let (sh, sw) = ((h - CROP) / lo, (w - CROP) / lo);
    Ok((0..hi)
        .flat_map(|i| (0..hi).map(move |j| (i * sh, j * sw)))
        .take(n)
        .collect())
}

impl IqaModel for HyperIqa {
    fn arch(&self) -> Arch {
        Arch::HyperIqa
    }
    fn backbone(&self) -> &dyn Backbone {
        self.backbone.as_ref()
    }
    fn feature_config(&self) -> ModelConfig {
        ModelConfig {
            backbone: self.config.backbone,
            drop_connect: self.config.drop_connect,
            test_crops: self.config.test_crops,
            ..ModelConfig::default()
        }
    }
    /// The four stage maps of a 224×224 crop, flattened (C·H·W each).
    fn tap_widths(&self) -> Vec<i64> {
        let ch = self.backbone.stage_channels();
        (0..4).map(|i| ch[i] * stage_side(i) * stage_side(i)).collect()
    }
    /// The four stage maps of a batch of 224×224 crops, each flattened to [B, C·H·W] (rows of
    /// the feature cache when the inputs are fixed 224×224 images; training checks the size
    /// first: `config::check_model_inputs`).
    fn taps(&self, x: &Tensor, train_backbone: bool) -> Vec<Tensor> {
        flatten_stages(self.backbone.stages(x, train_backbone))
    }
    fn heads(&self, taps: &[Tensor], _train: bool) -> Vec<Tensor> {
        let ch = self.backbone.stage_channels();
        let stages: [Tensor; 4] = std::array::from_fn(|i| {
            let s = stage_side(i);
            taps[i].reshape([-1, ch[i], s, s])
        });
        let net = self.hyper.forward(&stages[3]);
        vec![net.forward(&self.lda.forward(&stages))]
    }
    /// Whole images: the mean over [`HyperIqaConfig::test_crops`] grid crops (one crop when the
    /// image is 224×224).
    fn eval_path(&self) -> EvalPath<'_> {
        EvalPath::new(self.inference())
    }
}

/// Side of stage map `i` at a [`CROP`] input (56, 28, 14, 7).
fn stage_side(i: usize) -> i64 {
    FEATURE_SIZE << (3 - i)
}

fn flatten_stages(stages: [Tensor; 4]) -> Vec<Tensor> {
    stages.into_iter().map(|s| s.flatten(1, -1)).collect()
}

impl EvalForward for HyperIqaInference<'_> {
    fn taps(&self, x: &Tensor) -> Vec<Tensor> {
        flatten_stages(self.model.backbone.stages(x, false))
    }
    fn outputs(&self, x: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        let (h, w) = (x.size()[2], x.size()[3]);
        if (h, w) == (CROP, CROP) {
            return Ok(vec![self.forward(x)?]);
        }
        let crops = grid_crops(h, w, self.model.config.test_crops)?;
        Ok(vec![self.forward_crops(x, &crops)?])
    }
}
