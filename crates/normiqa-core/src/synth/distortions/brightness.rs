//! Brightness-change family: KADID-10k types 16 (brighten), 17 (darken), 18 (mean shift).

use super::{curve3, lab_to_rgb, map_lut, rgb_to_lab, Planes};
use image::RgbImage;

/// Type 16 levels: curve amount. `imdist_generator.m` `case 16`.
pub const BRIGHTEN_AMOUNT: [f64; 5] = [0.1, 0.2, 0.4, 0.7, 1.1];
/// Type 17 levels: curve amount. `imdist_generator.m` `case 17`.
pub const DARKEN_AMOUNT: [f64; 5] = [0.05, 0.1, 0.2, 0.4, 0.8];
/// Type 18 levels: offset added to all channels. `imdist_generator.m` `case 18`. Note the
/// order: level 1 is the brightest (+0.15), level 3 is no shift, level 5 the darkest, so for
/// this type the level is not a severity ranking (it is what the released table says).
pub const MEAN_SHIFT_AMOUNT: [f64; 5] = [0.15, 0.08, 0.0, -0.08, -0.15];

/// KADID `imbrighten`: tone curve through `(0.5, 0.5 + amount/2)` (KADID `curves`, a
/// 3-point MATLAB `spline`, i.e. a parabola, clipped) applied both to Lab L*/100 and to each
/// RGB channel, combined as `(2*rgb_curve + rgb(lab_curve)) / 3` (released code / ARNIQA port).
pub fn brighten(img: &RgbImage, amount: f64) -> RgbImage {
    let c = 0.5 + amount / 2.0;
    let mut p = Planes::from_rgb(img);
    p.map_pixels(|rgb| {
        let mut lab = rgb_to_lab(rgb);
        lab[0] = (curve3(lab[0] as f64 / 100.0, c) * 100.0) as f32;
        let j = lab_to_rgb(lab);
        let mut o = [0f32; 3];
        for k in 0..3 {
            o[k] = ((2.0 * curve3(rgb[k] as f64, c) + j[k].clamp(0.0, 1.0) as f64) / 3.0) as f32;
        }
        o
    });
    p.to_rgb()
}

/// KADID `imdarken`: RGB tone curve through `(0.5, 0.5 - amount/2)` (released code / ARNIQA
/// port with its default `dolab = false`).
pub fn darken(img: &RgbImage, amount: f64) -> RgbImage {
    let c = 0.5 - amount / 2.0;
    map_lut(img, |x| curve3(x, c))
}

/// KADID `immeanshift`: `im + amount`, clipped (released code / ARNIQA port).
pub fn mean_shift(img: &RgbImage, amount: f64) -> RgbImage {
    map_lut(img, |x| x + amount)
}
