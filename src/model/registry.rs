//! The one list of builders: backbone name → network, model name ([`Arch`]) → network. The
//! names themselves, their parsing and their default weights are the run's description
//! ([`crate::run::model`]).
//!
//! Adding a backbone: (1) write `backbone/<family>.rs` implementing [`Backbone`] with the
//! parameter names of its published weights; (2) add a variant to `run::model::BackboneName` with
//! its CLI name and default weights, and its builder here; (3) add a shape test in
//! `tests/model.rs` and a load test from a generated fixture state dict.

use tch::nn;

use super::dbcnn::{Dbcnn, DbcnnConfig};
use super::error::ModelError;
use super::hyperiqa::{HyperIqa, HyperIqaConfig};
use super::iqa::IqaModel;
use super::{LinearityIqa, PlainIqa};
pub use crate::run::model::{Arch, BackboneName, ModelConfig};

use super::backbone::{
    efficientnet_lite::{EfficientNetLite, LiteSpec},
    resnet::{ResNet, ResNetSpec},
    vgg::Plain,
    Backbone, Stages,
};

impl BackboneName {
    fn lite(&self) -> Option<LiteSpec> {
        match self {
            BackboneName::EfficientNetLite0 => Some(LiteSpec::LITE0),
            BackboneName::EfficientNetLite1 => Some(LiteSpec::LITE1),
            BackboneName::EfficientNetLite2 => Some(LiteSpec::LITE2),
            _ => None,
        }
    }

    /// Builds the network under path `p` (its variables get the published names below `p`).
    pub fn build(&self, p: &nn::Path, drop_connect: f64) -> Box<dyn Backbone> {
        match (self, self.lite()) {
            (_, Some(spec)) => Box::new(EfficientNetLite::new(p, spec, drop_connect)),
            (BackboneName::Vgg16, _) => Box::new(Plain::vgg16(p)),
            (BackboneName::AlexNet, _) => Box::new(Plain::alexnet(p)),
            _ => Box::new(self.resnet(p).expect("every other backbone is a ResNet")),
        }
    }

    /// Builds the network with its four stage maps exposed (multi-scale models: HyperIQA);
    /// `None` for the backbones without a four-stage split (VGG-16, AlexNet).
    pub fn build_stages(&self, p: &nn::Path, drop_connect: f64) -> Option<Box<dyn Stages>> {
        if let Some(spec) = self.lite() {
            return Some(Box::new(EfficientNetLite::new(p, spec, drop_connect)));
        }
        self.resnet(p).map(|r| Box::new(r) as Box<dyn Stages>)
    }

    fn resnet(&self, p: &nn::Path) -> Option<ResNet> {
        let spec = match self {
            BackboneName::ResNet18 => ResNetSpec::RESNET18,
            BackboneName::ResNet34 => ResNetSpec::RESNET34,
            BackboneName::ResNet50 => ResNetSpec::RESNET50,
            BackboneName::ResNeXt101_32x8d => ResNetSpec::RESNEXT101_32X8D,
            _ => return None,
        };
        Some(ResNet::new(p, spec))
    }
}

impl Arch {
    /// The configuration whose taps this network reads (with [`Arch::tap_tag`], the
    /// feature-cache key): the plain regressor always pools globally by average, so it shares
    /// LinearityIQA's default cached features.
    pub fn feature_config(&self, config: &ModelConfig) -> ModelConfig {
        match self {
            Arch::Plain => PlainIqa::feature_config(config),
            _ => config.clone(),
        }
    }

    /// What else the taps depend on, for the feature-cache key: empty for the models that read
    /// LinearityIQA's pooled levels; DBCNN's bilinear features depend on its S-CNN weights.
    pub fn tap_tag(&self, _config: &ModelConfig) -> String {
        match self {
            Arch::Linearity | Arch::Plain => String::new(),
            // (the key adds the S-CNN file's path, size and time)
            Arch::Dbcnn => "dbcnn-bilinear".into(),
            Arch::HyperIqa => "hyperiqa-stages".into(),
        }
    }

    /// Builds the network in `vs` (variables named as its published weights below `backbone.`).
    pub fn build(
        &self,
        vs: &nn::VarStore,
        config: &ModelConfig,
    ) -> Result<Box<dyn IqaModel>, ModelError> {
        Ok(match self {
            Arch::Linearity => Box::new(LinearityIqa::new(vs, config.clone())),
            Arch::Plain => Box::new(PlainIqa::new(vs, self.feature_config(config))),
            Arch::Dbcnn => Box::new(Dbcnn::new(vs, DbcnnConfig::of(config))),
            Arch::HyperIqa => Box::new(HyperIqa::new(vs, HyperIqaConfig::of(config))?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The description's block counts (`run::model`) are those of the networks built here.
    #[test]
    fn freezable_blocks_match_the_efficientnet_lite_specs() {
        for b in BackboneName::ALL {
            let built = b.lite().map(|spec| spec.stages().iter().map(|s| s.0).sum::<usize>() + 1);
            assert_eq!(b.freezable_blocks(), built, "{b}");
        }
    }
}
