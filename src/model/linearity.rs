//! LinearityIQA (Li, Jiang & Jiang, ACM MM 2020; reference `IQAmodel.py`): backbone → the feature
//! maps of its last two stages → SPSP pooling → per level an encoder
//! Linear(C,1024)-BN1d-Linear(1024,256)-BN1d-Linear(256,64)-BN1d-ReLU → a head 64→1 per level and a
//! fused head 128→1 on the concatenated encodings. Outputs are ordered [level 6, level 7, fused]
//! as the reference's `pq` list.

use tch::nn;
use tch::{Device, Tensor};

use super::backbone::{Backbone, FrozenBackbone};
use super::pooling::{pooled_len, spsp};
use super::ModelConfig;

/// nn.Linear with PyTorch's default initialisation: weight and bias ~ U(−1/√fan_in, 1/√fan_in)
/// (kaiming_uniform with a = √5).
pub fn torch_linear<'a, P: std::borrow::Borrow<nn::Path<'a>>>(
    p: P,
    c_in: i64,
    c_out: i64,
) -> nn::Linear {
    let bound = 1.0 / (c_in as f64).sqrt();
    let init = nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    nn::linear(
        p,
        c_in,
        c_out,
        nn::LinearConfig {
            ws_init: init,
            bs_init: Some(init),
            bias: true,
        },
    )
}

fn bn1d<'a, P: std::borrow::Borrow<nn::Path<'a>>>(p: P, c: i64) -> nn::BatchNorm {
    nn::batch_norm1d(
        p,
        c,
        nn::BatchNormConfig {
            eps: 1e-5,
            momentum: 0.1,
            ..Default::default()
        },
    )
}

/// The reference's `dr6`/`dr7` Sequential (module indices 0..6 kept in the parameter names).
#[derive(Debug)]
pub struct Encoder {
    l0: nn::Linear,
    b1: nn::BatchNorm,
    l2: nn::Linear,
    b3: nn::BatchNorm,
    l4: nn::Linear,
    b5: nn::BatchNorm,
}

impl Encoder {
    fn new(p: nn::Path, c_in: i64) -> Self {
        Encoder {
            l0: torch_linear(&p / 0, c_in, 1024),
            b1: bn1d(&p / 1, 1024),
            l2: torch_linear(&p / 2, 1024, 256),
            b3: bn1d(&p / 3, 256),
            l4: torch_linear(&p / 4, 256, 64),
            b5: bn1d(&p / 5, 64),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.l0)
            .apply_t(&self.b1, train)
            .apply(&self.l2)
            .apply_t(&self.b3, train)
            .apply(&self.l4)
            .apply_t(&self.b5, train)
            .relu()
    }
}

/// A 64→1 (or 128→1) regressor, optionally followed by BatchNorm1d(1) (`--use-bn-end`, "bnMSE").
#[derive(Debug)]
struct Regressor {
    linear: nn::Linear,
    bn: Option<nn::BatchNorm>,
}

impl Regressor {
    fn new(p: nn::Path, c_in: i64, bn_end: bool) -> Self {
        if bn_end {
            // Sequential(Linear, BatchNorm1d) in the reference: names `.0.*` and `.1.*`.
            Regressor {
                linear: torch_linear(&p / 0, c_in, 1),
                bn: Some(bn1d(&p / 1, 1)),
            }
        } else {
            Regressor {
                linear: torch_linear(&p, c_in, 1),
                bn: None,
            }
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = x.apply(&self.linear);
        let y = match &self.bn {
            Some(bn) => y.apply_t(bn, train),
            None => y,
        };
        y.reshape([-1])
    }
}

/// Everything after the backbone: encoders and the three regressors. Runs on pooled features, so
/// the frozen-backbone mode can train it on cached features.
#[derive(Debug)]
pub struct Heads {
    dr6: Encoder,
    dr7: Encoder,
    regr6: Regressor,
    regr7: Regressor,
    regression: Regressor,
}

impl Heads {
    /// `p` is the model root; parameter names are `dr6.*`, `dr7.*`, `regr6.*`, `regr7.*`, `regression.*`.
    pub fn new(p: &nn::Path, in6: i64, in7: i64, bn_end: bool) -> Self {
        Heads {
            dr6: Encoder::new(p / "dr6", in6),
            dr7: Encoder::new(p / "dr7", in7),
            regr6: Regressor::new(p / "regr6", 64, bn_end),
            regr7: Regressor::new(p / "regr7", 64, bn_end),
            regression: Regressor::new(p / "regression", 128, bn_end),
        }
    }

    /// Pooled features of both levels → [head 6, head 7, fused], each of shape [B].
    pub fn forward(&self, f6: &Tensor, f7: &Tensor, train: bool) -> [Tensor; 3] {
        let e6 = self.dr6.forward(f6, train);
        let e7 = self.dr7.forward(f7, train);
        let y6 = self.regr6.forward(&e6, train);
        let y7 = self.regr7.forward(&e7, train);
        let fused = self.regression.forward(&Tensor::cat(&[e6, e7], 1), train);
        [y6, y7, fused]
    }
}

/// The whole model. Variables live in one VarStore: the backbone under `backbone.` (named as its
/// published weights, optimiser group 1) and the heads at the root (group 0).
#[derive(Debug)]
pub struct LinearityIqa {
    pub config: ModelConfig,
    pub backbone: Box<dyn Backbone>,
    pub heads: Heads,
}

pub use super::iqa::{BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};

impl LinearityIqa {
    pub fn new(vs: &nn::VarStore, config: ModelConfig) -> Self {
        let root = vs.root();
        let bp = root.set_group(BACKBONE_GROUP) / BACKBONE_PREFIX;
        let backbone = config.backbone.build(&bp, config.drop_connect);
        let [c6, c7] = backbone.channels();
        let hp = root.set_group(HEADS_GROUP);
        let heads = Heads::new(
            &hp,
            pooled_len(c6, config.pool, config.p6),
            pooled_len(c7, config.pool, config.p7),
            config.use_bn_end,
        );
        LinearityIqa {
            config,
            backbone,
            heads,
        }
    }

    /// Pooled features of both levels for a normalised NCHW batch.
    pub fn features(&self, x: &Tensor, train_backbone: bool) -> (Tensor, Tensor) {
        let (m6, m7) = self.backbone.forward_two(x, train_backbone);
        (
            spsp(&m6, self.config.p6, self.config.pool),
            spsp(&m7, self.config.p7, self.config.pool),
        )
    }

    /// Full forward pass: [head 6, head 7, fused], each of shape [B].
    pub fn forward(&self, x: &Tensor, train_backbone: bool, train_heads: bool) -> [Tensor; 3] {
        let (f6, f7) = self.features(x, train_backbone);
        self.heads.forward(&f6, &f7, train_heads)
    }

    /// The model prepared for eval-mode forwards without gradients, with the backbone's
    /// BatchNorms folded into its convolutions where it has any (same outputs up to float
    /// rounding, less work). A snapshot of the current weights: build it after the last update
    /// it should see (once per validation pass when fine-tuning; once per run when frozen).
    pub fn inference(&self) -> Inference<'_> {
        Inference {
            model: self,
            fused: self.backbone.fuse(),
        }
    }
}

/// See [`LinearityIqa::inference`].
pub struct Inference<'a> {
    model: &'a LinearityIqa,
    fused: Option<Box<dyn FrozenBackbone>>,
}

impl Inference<'_> {
    /// Pooled features of both levels (eval mode, no gradients).
    pub fn features(&self, x: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let (m6, m7) = match &self.fused {
                Some(f) => f.forward_two(x),
                None => self.model.backbone.forward_two(x, false),
            };
            let c = &self.model.config;
            (spsp(&m6, c.p6, c.pool), spsp(&m7, c.p7, c.pool))
        })
    }

    /// [head 6, head 7, fused] (eval mode, no gradients).
    pub fn forward(&self, x: &Tensor) -> [Tensor; 3] {
        let (f6, f7) = self.features(x);
        tch::no_grad(|| self.model.heads.forward(&f6, &f7, false))
    }
}

/// A `--device` value that names no usable device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("--device cuda: no CUDA device is available to libtorch (a CPU-only build, or no GPU; build with `NORMIQA_FEATURES=cuda ./run setup-full`)")]
    NoCuda,
    #[error("--device cuda:{index}: only {count} CUDA device(s)")]
    NoSuchCuda { index: usize, count: i64 },
    #[error("--device {0}: expected cpu, cuda, cuda:N or auto")]
    Unknown(String),
}

/// Picks the compute device: `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available).
pub fn parse_device(s: &str) -> Result<Device, DeviceError> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::cuda_if_available()),
        "cuda" | "gpu" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        "cuda" | "gpu" => Err(DeviceError::NoCuda),
        other => match other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(i) if (i as i64) < tch::Cuda::device_count() => Ok(Device::Cuda(i)),
            Some(index) => Err(DeviceError::NoSuchCuda {
                index,
                count: tch::Cuda::device_count(),
            }),
            None => Err(DeviceError::Unknown(other.to_string())),
        },
    }
}

impl super::iqa::TwoLevel for LinearityIqa {
    fn pool(&self, m6: &Tensor, m7: &Tensor) -> Vec<Tensor> {
        vec![
            spsp(m6, self.config.p6, self.config.pool),
            spsp(m7, self.config.p7, self.config.pool),
        ]
    }
}

impl super::iqa::IqaModel for LinearityIqa {
    fn arch(&self) -> super::iqa::Arch {
        super::iqa::Arch::Linearity
    }
    fn backbone(&self) -> &dyn Backbone {
        self.backbone.as_ref()
    }
    fn feature_config(&self) -> ModelConfig {
        self.config.clone()
    }
    fn tap_widths(&self) -> Vec<i64> {
        let [c6, c7] = self.backbone.channels();
        vec![
            pooled_len(c6, self.config.pool, self.config.p6),
            pooled_len(c7, self.config.pool, self.config.p7),
        ]
    }
    fn taps(&self, x: &Tensor, train_backbone: bool) -> Vec<Tensor> {
        super::iqa::two_level_taps(self, x, train_backbone)
    }
    fn heads(&self, taps: &[Tensor], train: bool) -> Vec<Tensor> {
        self.heads.forward(&taps[0], &taps[1], train).into()
    }
    fn eval_path(&self) -> super::iqa::EvalPath<'_> {
        super::iqa::EvalPath::new(super::iqa::FusedTwoLevel::new(self))
    }
    fn eval_path_at(
        &self,
        precision: super::Precision,
    ) -> Result<super::iqa::EvalPath<'_>, super::error::ModelError> {
        Ok(super::iqa::EvalPath::new(super::iqa::FusedTwoLevel::at(self, precision)?))
    }
    fn frozen_at(
        &self,
        precision: super::Precision,
    ) -> Result<Option<Box<dyn super::backbone::FrozenBackbone>>, super::error::ModelError> {
        super::iqa::FusedTwoLevel::frozen(self, precision)
    }
    fn eval_path_over<'a>(&'a self, frozen: &'a dyn super::backbone::FrozenBackbone) -> super::iqa::EvalPath<'a> {
        super::iqa::EvalPath::new(super::iqa::FusedTwoLevel::over(self, frozen))
    }
}
