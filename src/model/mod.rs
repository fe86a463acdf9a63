//! Models: backbones (one file each), pooling, the model interface ([`iqa`]), the models
//! (LinearityIQA, DBCNN with its S-CNN, HyperIQA, the plain regressor: one file each), the
//! registry (names to networks), pretrained weights and precisions. What names a model (its
//! configuration) is the run's description ([`crate::run::model`]); trained models and the
//! inference path are [`crate::infer`].

pub mod backbone;
pub mod iqa;
pub mod dbcnn;
pub mod error;
pub mod hyperiqa;
pub mod linearity;
pub mod partial;
pub mod plain;
pub mod pooling;
pub mod precision;
pub mod registry;
pub mod scnn;
pub mod stored;
pub mod weights;

pub use backbone::Backbone;
pub use iqa::{Arch, IqaModel};
pub use linearity::{parse_device, DeviceError, LinearityIqa};
pub use plain::PlainIqa;
pub use pooling::Pool;
pub use precision::Precision;
pub use registry::BackboneName;
pub use crate::run::model::ModelConfig;

