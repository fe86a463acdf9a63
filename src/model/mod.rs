//! Models: backbones (one file each), pooling, the model interface ([`iqa`]), the models
//! (LinearityIQA, DBCNN with its S-CNN, HyperIQA, the plain regressor: one file each), the
//! registry, pretrained weights, and trained models with the inference path ([`trained`]).

pub mod backbone;
pub mod iqa;
pub mod dbcnn;
pub mod error;
pub mod hyperiqa;
pub mod linearity;
pub mod plain;
pub mod pooling;
pub mod registry;
pub mod trained;
pub mod regressor;
pub mod scnn;
pub mod weights;

pub use backbone::Backbone;
pub use iqa::{Arch, IqaModel};
pub use linearity::{parse_device, DeviceError, LinearityIqa};
pub use plain::PlainIqa;
pub use pooling::Pool;
pub use registry::BackboneName;

/// What defines a LinearityIQA network (saved in every run's `run.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
        }
    }
}
