//! Test-time views (`--tta` of `predict`, `test` and `serve`): an image's score as the mean over
//! several views of it, as the field does at test time.
//!
//! - `none`: the whole image (the default; what the model was evaluated on in training);
//! - `flip`: the image and its horizontal mirror;
//! - `five-crop`: the four corner crops and the centre crop, each `--tta-crop-fraction` (default
//!   0.75) of the image's height and width;
//! - `ten-crop`: the five crops and their horizontal mirrors (the same ten views as
//!   torchvision's `TenCrop`: the crops of the mirrored image are the mirrors of the crops).
//!
//! The score is the mean of the *raw* head outputs over the views, mapped once by the run's
//! k·ŷ+b. The mapping is linear, so this equals the mean of the mapped scores of the views:
//! k·(Σᵥ ŷᵥ/V)+b = Σᵥ (k·ŷᵥ+b)/V. The views of a batch of same-size images have one size and
//! go through the model together, as one batch of V·B images, on whichever eval path
//! (fp32 or the folded bf16 backbone) the model runs.
//!
//! What the views buy in accuracy and cost in time: RESULTS.md, "Test-time choices".

use tch::Tensor;

use crate::model::error::ModelError;
use crate::model::iqa::{Arch, EvalPath, IqaModel};

/// Which views of an image are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tta {
    /// The whole image.
    #[default]
    None,
    /// The image and its horizontal mirror.
    Flip,
    /// The four corner crops and the centre crop.
    FiveCrop,
    /// The five crops and their horizontal mirrors.
    TenCrop,
}

impl Tta {
    /// The option value, as typed.
    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Flip => "flip",
            Tta::FiveCrop => "five-crop",
            Tta::TenCrop => "ten-crop",
        }
    }

    /// Whether the views are crops (and `--tta-crop-fraction` applies).
    pub fn crops(self) -> bool {
        matches!(self, Tta::FiveCrop | Tta::TenCrop)
    }
}

impl std::fmt::Display for Tta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The side of the crops, as a fraction of the image's height and width, when none is given.
pub const DEFAULT_CROP_FRACTION: f64 = 0.75;

/// Test-time views that cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum TtaError {
    #[error("--tta-crop-fraction {0}: must be a fraction of the image's side above 0 and at most 1 (e.g. 0.75)")]
    Fraction(f64),
    #[error("--tta-crop-fraction applies to --tta five-crop and ten-crop only, not to --tta {0}")]
    FractionUnused(Tta),
    #[error(
        "--tta {tta}: the {model} model already scores an image as the mean over its own grid of \
         {crops} crops (test_crops in its config.toml); use --tta none"
    )]
    OwnViews {
        tta: Tta,
        model: &'static str,
        crops: usize,
    },
}

/// The views scored for each image and the side of the crops.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TestTime {
    pub views: Tta,
    /// Side of the crops as a fraction of the image's height and width (crops only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop_fraction: Option<f64>,
}

/// `none`, `flip`, `five-crop (crops 0.75)`: the views as the options spell them.
impl std::fmt::Display for TestTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.crop_fraction {
            Some(c) => write!(f, "{} (crops {c})", self.views),
            None => write!(f, "{}", self.views),
        }
    }
}

impl Default for TestTime {
    fn default() -> Self {
        TestTime {
            views: Tta::None,
            crop_fraction: None,
        }
    }
}

impl TestTime {
    /// `views` with crops of side `crop_fraction` ([`DEFAULT_CROP_FRACTION`] when not given);
    /// a fraction outside (0, 1], or one given for views that are not crops, is refused.
    pub fn new(views: Tta, crop_fraction: Option<f64>) -> Result<Self, TtaError> {
        match crop_fraction {
            Some(f) if !(f > 0.0 && f <= 1.0) => return Err(TtaError::Fraction(f)),
            Some(_) if !views.crops() => return Err(TtaError::FractionUnused(views)),
            _ => {}
        }
        let crop_fraction = views
            .crops()
            .then(|| crop_fraction.unwrap_or(DEFAULT_CROP_FRACTION));
        Ok(TestTime {
            views,
            crop_fraction,
        })
    }

    /// Whether each image is scored once, whole.
    pub fn is_none(&self) -> bool {
        self.views == Tta::None
    }

    /// Refuses views for a model that already averages views of its own (HyperIQA's grid of
    /// test crops).
    pub fn check(&self, model: &dyn IqaModel) -> Result<(), TtaError> {
        match (self.views, model.arch()) {
            (Tta::None, _) => Ok(()),
            (tta, Arch::HyperIqa) => Err(TtaError::OwnViews {
                tta,
                model: Arch::HyperIqa.name(),
                crops: model.feature_config().test_crops,
            }),
            _ => Ok(()),
        }
    }

    /// The crops (top, left, height, width) of an `h`×`w` image: top-left, top-right,
    /// bottom-left, bottom-right, centre (torchvision's order; the centre's offset rounded down).
    pub fn crop_boxes(&self, h: i64, w: i64) -> Vec<[i64; 4]> {
        let f = self.crop_fraction.unwrap_or(DEFAULT_CROP_FRACTION);
        let side = |n: i64| ((f * n as f64).round() as i64).clamp(1, n);
        let (ch, cw) = (side(h), side(w));
        let (bottom, right) = (h - ch, w - cw);
        [[0, 0], [0, right], [bottom, 0], [bottom, right], [bottom / 2, right / 2]]
            .map(|[t, l]| [t, l, ch, cw])
            .to_vec()
    }

    /// The views of a batch `x` [B, 3, H, W], one after the other: [V·B, 3, h, w], view `v` of
    /// image `b` at row v·B+b. Cut and stacked in NHWC memory and returned as a channels-last
    /// NCHW view, the layout [`crate::batch::to_tensor`] gives and the CPU convolutions are
    /// fastest on, whatever the layout of `x` (libtorch's `flip` and `cat` keep a channels-last
    /// input's layout too; this does not depend on it).
    pub fn views_of(&self, x: &Tensor) -> Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        let nhwc = x.permute([0, 2, 3, 1]);
        let crops = || -> Vec<Tensor> {
            self.crop_boxes(h, w)
                .into_iter()
                .map(|[t, l, ch, cw]| nhwc.narrow(1, t, ch).narrow(2, l, cw))
                .collect()
        };
        let views: Vec<Tensor> = match self.views {
            Tta::None => return x.shallow_clone(),
            Tta::Flip => vec![nhwc.shallow_clone(), nhwc.flip([2])],
            Tta::FiveCrop => crops(),
            Tta::TenCrop => {
                let c = crops();
                let mirrors: Vec<Tensor> = c.iter().map(|v| v.flip([2])).collect();
                c.into_iter().chain(mirrors).collect()
            }
        };
        Tensor::cat(&views, 0).contiguous().permute([0, 3, 1, 2])
    }

    /// Every head's raw outputs for the batch `x` [B, 3, H, W] through `path`: the mean over the
    /// views of each image (one forward pass of all views).
    pub fn outputs(&self, path: &EvalPath<'_>, x: &Tensor) -> Result<Vec<Tensor>, ModelError> {
        if self.is_none() {
            return path.outputs(x);
        }
        let b = x.size()[0];
        let heads = path.outputs(&self.views_of(x))?;
        Ok(heads
            .into_iter()
            .map(|h| h.reshape([-1, b]).mean_dim(0, false, None))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn fractions_outside_zero_one_are_refused_naming_the_option() {
        for f in [0.0, -0.5, 1.01, f64::NAN] {
            let e = TestTime::new(Tta::FiveCrop, Some(f)).unwrap_err().to_string();
            assert!(e.starts_with("--tta-crop-fraction"), "{e}");
        }
        assert!(TestTime::new(Tta::TenCrop, Some(1.0)).is_ok());
        let e = TestTime::new(Tta::Flip, Some(0.5)).unwrap_err().to_string();
        assert!(e.contains("--tta flip"), "{e}");
        assert_eq!(TestTime::new(Tta::FiveCrop, None).unwrap().crop_fraction, Some(0.75));
        assert_eq!(TestTime::new(Tta::Flip, None).unwrap().crop_fraction, None);
    }

    #[test]
    fn crop_boxes_are_the_corners_and_the_centre() {
        let t = TestTime::new(Tta::FiveCrop, Some(0.75)).unwrap();
        assert_eq!(
            t.crop_boxes(500, 400),
            vec![[0, 0, 375, 300], [0, 100, 375, 300], [125, 0, 375, 300], [125, 100, 375, 300], [62, 50, 375, 300]]
        );
    }

    #[test]
    fn views_of_image_b_are_at_rows_v_times_b_plus_b() {
        let x = Tensor::arange(2 * 3 * 4 * 4, (Kind::Float, Device::Cpu)).view([2, 3, 4, 4]);
        let t = TestTime::new(Tta::TenCrop, Some(0.5)).unwrap();
        let v = t.views_of(&x);
        assert_eq!(v.size(), vec![20, 3, 2, 2]);
        // view 6 (mirror of the top-right crop) of image 1
        let want = x.get(1).narrow(1, 0, 2).narrow(2, 2, 2).flip([2]);
        assert!(v.get(6 * 2 + 1).equal(&want));
    }

    #[test]
    fn views_are_channels_last_as_the_batches_of_images() {
        let x = Tensor::arange(2 * 3 * 6 * 8, (Kind::Float, Device::Cpu)).view([2, 6, 8, 3]).permute([0, 3, 1, 2]);
        for views in [Tta::Flip, Tta::FiveCrop, Tta::TenCrop] {
            let v = TestTime::new(views, None).unwrap().views_of(&x);
            let (s, n) = (v.stride(), v.size());
            assert_eq!(s, vec![n[1] * n[2] * n[3], 1, n[3] * n[1], n[1]], "{views}: NHWC memory");
        }
    }
}
