//! The training-set augmentation a run asks for (the reference's `--augment` options); applied
//! by `train::augment`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Maximum rotation in degrees (the reference's `--angle`, default 2).
    #[serde(default = "default_angle")]
    pub angle: f64,
    /// Probability of a horizontal flip (`--hflip_p`, default 0.5).
    #[serde(default = "default_hflip")]
    pub hflip: f64,
    /// Random crop `[h, w]` (`--crop_size_h`, `--crop_size_w`); none keeps the whole image.
    #[serde(default)]
    pub crop: Option<[u32; 2]>,
}

fn default_angle() -> f64 {
    2.0
}
fn default_hflip() -> f64 {
    0.5
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            angle: default_angle(),
            hflip: default_hflip(),
            crop: None,
        }
    }
}
