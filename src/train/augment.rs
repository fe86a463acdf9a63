//! Training-set augmentation of the reference (`IQAdataset.transform` with `--augment`): rotate
//! by a uniform angle in [−angle, angle] degrees (PIL `rotate`: about the centre, nearest
//! neighbour, black fill, same size), flip horizontally with probability `hflip`, then crop a
//! random `crop = [h, w]` window (none: keep the size). Only the image-based paths use it
//! (fine-tuning, or a frozen backbone in `reference` mode): cached features are computed once.

use anyhow::{bail, Result};
use image::RgbImage;
use rand::Rng;

pub use crate::run::augment::Augment;

/// PIL-style rotation by `deg` degrees counter-clockwise about the image centre.
pub fn rotate(im: &RgbImage, deg: f64) -> RgbImage {
    if deg == 0.0 {
        return im.clone();
    }
    let (w, h) = im.dimensions();
    let (s, c) = (-deg.to_radians()).sin_cos();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    RgbImage::from_fn(w, h, |x, y| {
        let (xs, ys) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
        let xi = (c * xs + s * ys + cx).floor();
        let yi = (-s * xs + c * ys + cy).floor();
        if xi >= 0.0 && yi >= 0.0 && xi < w as f64 && yi < h as f64 {
            *im.get_pixel(xi as u32, yi as u32)
        } else {
            image::Rgb([0, 0, 0])
        }
    })
}

impl Augment {
    /// One random draw, in the reference's order: angle, flip decision, crop corner; then
    /// rotate, flip, crop.
    pub fn apply(&self, im: &RgbImage, rng: &mut impl Rng) -> Result<RgbImage> {
        let (w, h) = im.dimensions();
        let angle = if self.angle > 0.0 {
            rng.gen_range(-self.angle..=self.angle)
        } else {
            0.0
        };
        let flip = rng.gen::<f64>() < self.hflip;
        let corner = match self.crop {
            Some([ch, cw]) => {
                if ch > h || cw > w {
                    bail!("augmentation crop {ch}x{cw} is larger than the {h}x{w} image");
                }
                Some((rng.gen_range(0..=h - ch), rng.gen_range(0..=w - cw), ch, cw))
            }
            None => None,
        };
        let mut out = rotate(im, angle);
        if flip {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        if let Some((i, j, ch, cw)) = corner {
            out = image::imageops::crop_imm(&out, j, i, cw, ch).to_image();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]))
    }

    #[test]
    fn rotation_flip_crop() {
        let im = gradient(8, 6);
        assert_eq!(rotate(&im, 0.0), im);
        // 90° counter-clockwise on a square: the top-right corner moves to the top-left.
        let sq = gradient(6, 6);
        let r = rotate(&sq, 90.0);
        assert_eq!(r.get_pixel(0, 0), sq.get_pixel(5, 0));
        assert_eq!(r.get_pixel(0, 5), sq.get_pixel(0, 0));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let a = Augment {
            angle: 0.0,
            hflip: 1.0,
            crop: Some([4, 5]),
        };
        let out = a.apply(&im, &mut rng).unwrap();
        assert_eq!(out.dimensions(), (5, 4));
        // Flipped: x decreases to the right.
        assert!(out.get_pixel(0, 0)[0] > out.get_pixel(4, 0)[0]);
        let none = Augment {
            angle: 0.0,
            hflip: 0.0,
            crop: None,
        };
        assert_eq!(none.apply(&im, &mut rng).unwrap(), im);
        assert!(Augment {
            crop: Some([7, 9]),
            ..none
        }
        .apply(&im, &mut rng)
        .is_err());
    }
}
