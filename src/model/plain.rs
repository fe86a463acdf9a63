//! The plain regressor of the MRKD paper: backbone → global average pooling of the last stage →
//! Linear(C, 1). One head.

use tch::{nn, Tensor};

use super::backbone::Backbone;
use super::iqa::{Arch, IqaModel};
use super::linearity::{torch_linear, BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};
use super::pooling::{pooled_len, spsp};
use super::{ModelConfig, Pool};

#[derive(Debug)]
pub struct PlainIqa {
    pub config: ModelConfig,
    pub backbone: Box<dyn Backbone>,
    pub fc: nn::Linear,
}

impl PlainIqa {
    /// Backbone under `backbone.` (group 1), the regressor `fc.*` (group 0).
    pub fn new(vs: &nn::VarStore, config: ModelConfig) -> Self {
        let root = vs.root();
        let backbone = config.backbone.build(
            &(root.set_group(BACKBONE_GROUP) / BACKBONE_PREFIX),
            config.drop_connect,
        );
        let c = backbone.channels()[1];
        let fc = torch_linear(
            root.set_group(HEADS_GROUP) / "fc",
            pooled_len(c, Pool::Avg, 1),
            1,
        );
        PlainIqa {
            config,
            backbone,
            fc,
        }
    }

    /// Global average pooling whatever `config` says (so the taps are LinearityIQA's default).
    pub fn feature_config(config: &ModelConfig) -> ModelConfig {
        ModelConfig {
            pool: Pool::Avg,
            p6: 1,
            p7: 1,
            use_bn_end: false,
            ..config.clone()
        }
    }
}

impl IqaModel for PlainIqa {
    fn arch(&self) -> Arch {
        Arch::Plain
    }
    fn backbone(&self) -> &dyn Backbone {
        self.backbone.as_ref()
    }
    fn feature_config(&self) -> ModelConfig {
        Self::feature_config(&self.config)
    }
    fn tap_widths(&self) -> Vec<i64> {
        self.backbone.channels().to_vec()
    }
    /// Both levels, pooled globally (the level-6 tap is unused; it keeps the cache shared).
    fn pool(&self, m6: &Tensor, m7: &Tensor) -> Vec<Tensor> {
        vec![spsp(m6, 1, Pool::Avg), spsp(m7, 1, Pool::Avg)]
    }
    fn heads(&self, taps: &[Tensor], _train: bool) -> Vec<Tensor> {
        vec![taps[1].apply(&self.fc).reshape([-1])]
    }
}
