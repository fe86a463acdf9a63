//! Models: backbones (one file each), pooling, the model interface ([`iqa`]), the models
//! (LinearityIQA, DBCNN with its S-CNN, HyperIQA, the plain regressor: one file each), the
//! registry, pretrained weights, and trained models with the inference path ([`trained`]).

pub mod backbone;
pub mod checks;
pub mod iqa;
pub mod dbcnn;
pub mod ensemble;
pub mod error;
pub mod guarded;
pub mod hyperiqa;
pub mod linearity;
pub mod partial;
pub mod plain;
pub mod pool;
pub mod pooling;
pub mod precision;
pub mod registry;
pub mod trained;
pub mod tta;
pub mod scnn;
pub mod weights;

pub use backbone::Backbone;
pub use iqa::{Arch, IqaModel};
pub use linearity::{parse_device, DeviceError, LinearityIqa};
pub use plain::PlainIqa;
pub use pooling::Pool;
pub use precision::Precision;
pub use registry::BackboneName;
pub use tta::{TestTime, Tta};

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
