//! The plain regressor of the MRKD paper's "ResNet50" model: an ImageNet backbone, global average
//! pooling of its last stage, one linear layer to the score (torchvision's ResNet-50 with `fc`
//! replaced by Linear(2048, 1)). One head. Fine-tuned as a whole, or trained on cached pooled
//! features with the backbone frozen.
//!
//! Variables: the backbone under `backbone.` in group 1 with its published names, `fc.weight`
//! and `fc.bias` in group 0 (PyTorch's default Linear initialisation).
//!
//! **Stand-in backbone.** ResNet-50 is the paper's; EfficientNet-Lite0 (1280 pooled values, the
//! ImageNet weights obtainable here) is the documented stand-in; any registered backbone works.

use tch::{nn, Tensor};

use super::backbone::Backbone;
use super::iqa::{two_level_taps, Arch, EvalPath, FusedTwoLevel, IqaModel, TwoLevel};
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
    fn taps(&self, x: &Tensor, train_backbone: bool) -> Vec<Tensor> {
        two_level_taps(self, x, train_backbone)
    }
    fn heads(&self, taps: &[Tensor], _train: bool) -> Vec<Tensor> {
        vec![taps[1].apply(&self.fc).reshape([-1])]
    }
    fn eval_path(&self) -> EvalPath<'_> {
        EvalPath::new(FusedTwoLevel::new(self))
    }
    fn eval_path_at(
        &self,
        precision: super::Precision,
    ) -> Result<EvalPath<'_>, super::error::ModelError> {
        Ok(EvalPath::new(FusedTwoLevel::at(self, precision)?))
    }
    fn frozen_at(
        &self,
        precision: super::Precision,
    ) -> Result<Option<Box<dyn super::backbone::FrozenBackbone>>, super::error::ModelError> {
        FusedTwoLevel::frozen(self, precision)
    }
    fn eval_path_over<'a>(&'a self, frozen: &'a dyn super::backbone::FrozenBackbone) -> EvalPath<'a> {
        EvalPath::new(FusedTwoLevel::over(self, frozen))
    }
}

impl TwoLevel for PlainIqa {
    /// Both levels, pooled globally (the level-6 tap is unused; it keeps the cache shared).
    fn pool(&self, m6: &Tensor, m7: &Tensor) -> Vec<Tensor> {
        vec![spsp(m6, 1, Pool::Avg), spsp(m7, 1, Pool::Avg)]
    }
}
