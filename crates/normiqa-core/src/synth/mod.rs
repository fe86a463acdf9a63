//! Synthetic distortions: the 25 distortion types of KADID-10k at 5 levels each, and the
//! generation of a KADID-style full-reference dataset from reference images.
//!
//! Reference: H. Lin, V. Hosu, D. Saupe, "KADID-10k: A Large-scale Artificially Distorted IQA
//! Database", QoMEX 2019, and its released MATLAB generator (`imdist_generator.m` and the
//! `im*` distortion functions). Level parameter tables are the generator's; see each family
//! file in [`distortions`] for what follows the released code and what is our reading.
//!
//! ```no_run
//! use normiqa_core::synth::{apply, embedded_references, Distortion};
//! let (_, img) = &embedded_references()[0];
//! let d: Distortion = "gaussian_blur".parse().unwrap();
//! let out = apply(d, img, 3, 42).unwrap();
//! assert_eq!(out.dimensions(), img.dimensions());
//! ```

pub mod distortions;
pub mod generate;

pub use generate::{generate, write_embedded_references, GenerateOptions, SynthRecord};

use distortions::{blur, brightness, color, compression, noise, sharpness, spatial};
use image::RgbImage;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::str::FromStr;

/// Errors of the synthetic-distortion module.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("distortion level {level} out of range for {distortion}: levels are 1..=5")]
    InvalidLevel { distortion: &'static str, level: u8 },
    #[error("unknown distortion '{0}' (expected a KADID-10k name such as \"gaussian_blur\" or an id 1..=25)")]
    UnknownDistortion(String),
    #[error("empty image ({0}x{1})")]
    EmptyImage(u32, u32),
    #[error("codec error: {0}")]
    Codec(String),
    #[error("image error for {path}: {source}")]
    Image {
        path: String,
        source: image::ImageError,
    },
    #[error("io error for {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("csv error: {0}")]
    Csv(#[from] csv::Error),
    /// A reference image refused by the decoder (truncated, over the pixel limit, unreadable):
    /// references are decoded as every other image ([`crate::data::decode::decode_one`]).
    #[error(transparent)]
    Decode(#[from] crate::data::DataError),
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

/// The seven KADID-10k distortion families.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Blur,
    Color,
    Compression,
    Noise,
    Brightness,
    Spatial,
    Sharpness,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Blur => "blur",
            Family::Color => "color",
            Family::Compression => "compression",
            Family::Noise => "noise",
            Family::Brightness => "brightness",
            Family::Spatial => "spatial",
            Family::Sharpness => "sharpness",
        }
    }
}

macro_rules! distortions {
    ($( $id:literal $var:ident $name:literal $fam:ident ),* $(,)?) => {
        /// The 25 KADID-10k distortion types, in KADID's order (`id()` 1..=25).
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Distortion { $( $var ),* }

        impl Distortion {
            /// All 25 types in KADID order.
            pub const ALL: [Distortion; 25] = [ $( Distortion::$var ),* ];

            /// KADID-10k type id, 1..=25 (the `dd` in `I01_dd_ll.png`).
            pub fn id(self) -> u8 {
                match self { $( Distortion::$var => $id ),* }
            }

            /// snake_case name, e.g. `"gaussian_blur"`.
            pub fn name(self) -> &'static str {
                match self { $( Distortion::$var => $name ),* }
            }

            /// The family the type belongs to.
            pub fn family(self) -> Family {
                match self { $( Distortion::$var => Family::$fam ),* }
            }
        }
    };
}

distortions! {
    1 GaussianBlur "gaussian_blur" Blur,
    2 LensBlur "lens_blur" Blur,
    3 MotionBlur "motion_blur" Blur,
    4 ColorDiffusion "color_diffusion" Color,
    5 ColorShift "color_shift" Color,
    6 ColorQuantization "color_quantization" Color,
    7 ColorSaturationHsv "color_saturation_hsv" Color,
    8 ColorSaturationLab "color_saturation_lab" Color,
    9 Jpeg2000 "jpeg2000" Compression,
    10 Jpeg "jpeg" Compression,
    11 WhiteNoise "white_noise" Noise,
    12 WhiteNoiseColorComponent "white_noise_color_component" Noise,
    13 ImpulseNoise "impulse_noise" Noise,
    14 MultiplicativeNoise "multiplicative_noise" Noise,
    15 Denoise "denoise" Noise,
    16 Brighten "brighten" Brightness,
    17 Darken "darken" Brightness,
    18 MeanShift "mean_shift" Brightness,
    19 Jitter "jitter" Spatial,
    20 NonEccentricityPatch "non_eccentricity_patch" Spatial,
    21 Pixelate "pixelate" Spatial,
    22 Quantization "quantization" Spatial,
    23 ColorBlock "color_block" Spatial,
    24 HighSharpen "high_sharpen" Sharpness,
    25 ContrastChange "contrast_change" Sharpness,
}

impl Distortion {
    /// The type with KADID id `id` (1..=25).
    pub fn from_id(id: u8) -> Option<Distortion> {
        Distortion::ALL.get((id as usize).wrapping_sub(1)).copied()
    }
}

impl fmt::Display for Distortion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Distortion {
    type Err = SynthError;
    /// Accepts the snake_case name (case-insensitive, `-` or `_`) or the numeric id ("7", "07").
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase().replace('-', "_");
        if let Ok(id) = t.parse::<u8>() {
            return Distortion::from_id(id)
                .ok_or_else(|| SynthError::UnknownDistortion(s.to_string()));
        }
        Distortion::ALL
            .iter()
            .copied()
            .find(|d| d.name() == t)
            .ok_or_else(|| SynthError::UnknownDistortion(s.to_string()))
    }
}

/// Apply distortion `d` at `level` (1..=5) to `img`. Deterministic: the randomness of the
/// random types (motion direction, noise, patches, ...) comes from a ChaCha8 RNG seeded with
/// `seed`. The output has the size of the input.
pub fn apply(d: Distortion, img: &RgbImage, level: u8, seed: u64) -> Result<RgbImage, SynthError> {
    if !(1..=5).contains(&level) {
        return Err(SynthError::InvalidLevel {
            distortion: d.name(),
            level,
        });
    }
    if img.width() == 0 || img.height() == 0 {
        return Err(SynthError::EmptyImage(img.width(), img.height()));
    }
    let l = (level - 1) as usize;
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    use Distortion::*;
    Ok(match d {
        GaussianBlur => blur::gaussian_blur(img, blur::GAUSSIAN_BLUR_SIGMA[l]),
        LensBlur => blur::lens_blur(img, blur::LENS_BLUR_RADIUS[l]),
        MotionBlur => blur::motion_blur(img, blur::MOTION_BLUR_LENGTH[l], rng),
        ColorDiffusion => color::color_diffusion(img, color::COLOR_DIFFUSION_AMOUNT[l]),
        ColorShift => color::color_shift(img, color::COLOR_SHIFT_AMOUNT[l], rng),
        ColorQuantization => color::color_quantization(img, color::COLOR_QUANTIZATION_COLORS[l]),
        ColorSaturationHsv => {
            color::color_saturation_hsv(img, color::COLOR_SATURATION_HSV_FACTOR[l])
        }
        ColorSaturationLab => {
            color::color_saturation_lab(img, color::COLOR_SATURATION_LAB_FACTOR[l])
        }
        Jpeg2000 => compression::jpeg2000(img, compression::JPEG2000_RATIO[l])?,
        Jpeg => compression::jpeg(img, compression::JPEG_QUALITY[l])?,
        WhiteNoise => noise::white_noise(img, noise::WHITE_NOISE_VAR[l], rng),
        WhiteNoiseColorComponent => {
            noise::white_noise_color_component(img, noise::WHITE_NOISE_CC_VAR[l], rng)
        }
        ImpulseNoise => noise::impulse_noise(img, noise::IMPULSE_NOISE_DENSITY[l], rng),
        MultiplicativeNoise => {
            noise::multiplicative_noise(img, noise::MULTIPLICATIVE_NOISE_VAR[l], rng)
        }
        Denoise => noise::denoise(img, noise::DENOISE_VAR[l], rng),
        Brighten => brightness::brighten(img, brightness::BRIGHTEN_AMOUNT[l]),
        Darken => brightness::darken(img, brightness::DARKEN_AMOUNT[l]),
        MeanShift => brightness::mean_shift(img, brightness::MEAN_SHIFT_AMOUNT[l]),
        Jitter => spatial::jitter(img, spatial::JITTER_AMOUNT[l], rng),
        NonEccentricityPatch => {
            spatial::non_eccentricity_patch(img, spatial::NON_ECCENTRICITY_PATCHES[l], rng)
        }
        Pixelate => spatial::pixelate(img, spatial::PIXELATE_STRENGTH[l]),
        Quantization => spatial::quantization(img, spatial::QUANTIZATION_LEVELS[l]),
        ColorBlock => spatial::color_block(img, spatial::COLOR_BLOCK_COUNT[l], rng),
        HighSharpen => sharpness::high_sharpen(img, sharpness::HIGH_SHARPEN_AMOUNT[l]),
        ContrastChange => sharpness::contrast_change(img, sharpness::CONTRAST_CHANGE_AMOUNT[l]),
    })
}

macro_rules! embedded {
    ($($name:literal),*) => {
        &[ $( ($name, include_bytes!(concat!("../../../../assets/references/", $name, ".png")) as &[u8]) ),* ]
    };
}

static EMBEDDED: &[(&str, &[u8])] =
    embedded!("kodim03", "kodim05", "kodim13", "kodim15", "kodim20", "kodim23");

/// Six 128x128 Kodak images compiled into the crate (see `assets/references/README.md`):
/// `(name, image)`, e.g. `("kodim03", ..)`.
pub fn embedded_references() -> Vec<(&'static str, RgbImage)> {
    EMBEDDED
        .iter()
        .map(|(name, bytes)| {
            let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
                .expect("embedded reference PNG decodes")
                .to_rgb8();
            (*name, img)
        })
        .collect()
}
