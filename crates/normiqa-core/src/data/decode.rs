//! Decoding: every image is decoded once (in parallel with rayon), converted to 8-bit RGB and
//! resized by a list of [`Resize`] rules; normalisation to ImageNet statistics, CHW.
//!
//! Resizing reproduces PIL's `Image.resize((w, h), BILINEAR)`, which is what torchvision's
//! `resize(img, (h, w))` does on PIL images: a separable triangle filter whose support grows
//! with the scale factor when downsampling (antialiasing). `fast_image_resize`'s
//! `Convolution(Bilinear)` implements the same filter.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use fast_image_resize as fr;
use image::RgbImage;
use rayon::prelude::*;

use super::error::{io_err, DataError, Result};

/// A resize rule; rules are applied in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Resize {
    /// Leave the image as it is.
    Keep,
    /// Resize to `h`×`w` (height × width); no-op when the image already has that size.
    Exact { h: u32, w: u32 },
    /// Resize to `h`×`w` only when the image is not `h`×`w` — the same effect as `Exact`,
    /// kept separate to state intent: the reference's CLIVE rule is `IfNot { h: 500, w: 500 }`
    /// (1024.JPG 640×960 and 1113.JPG 608×608 are resized, the rest left alone).
    IfNot { h: u32, w: u32 },
}

impl Resize {
    /// The reference LinearityIQA rule for CLIVE: images that are not 500×500 become 500×500.
    pub const CLIVE: Resize = Resize::IfNot { h: 500, w: 500 };
}

/// ImageNet channel means (torchvision `Normalize`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Decodes one image file to RGB8 and applies `resize` in order. Missing, unreadable, corrupt
/// or unsupported files are errors naming the file.
pub fn decode_one(path: &Path, resize: &[Resize]) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    decode_bytes(bytes, path, resize)
}

/// Decodes an image held in memory exactly as [`decode_one`] decodes a file with these bytes
/// (`serve` scores uploads with it); `path` only names the image in errors.
pub fn decode_bytes(bytes: Vec<u8>, path: &Path, resize: &[Resize]) -> Result<RgbImage> {
    let mut rgb = match decode_jpeg_like_libjpeg(&bytes) {
        Some(rgb) => rgb,
        None => {
            let decode_err = |source| DataError::Decode {
                path: path.to_path_buf(),
                source,
            };
            image::ImageReader::new(Cursor::new(bytes))
                .with_guessed_format()
                .map_err(io_err(path))?
                .decode()
                .map_err(decode_err)?
                .into_rgb8()
        }
    };
    for r in resize {
        rgb = apply(rgb, *r).map_err(|(h, w, msg)| DataError::Resize {
            path: path.to_path_buf(),
            h,
            w,
            msg,
        })?;
    }
    Ok(rgb)
}

/// Decodes every file (in parallel, each once), in the order given. The first error (naming
/// its file) is returned.
pub fn decode_all(paths: &[PathBuf], resize: &[Resize]) -> Result<Vec<RgbImage>> {
    paths.par_iter().map(|p| decode_one(p, resize)).collect()
}

/// JPEGs (RGB or greyscale) are decoded with `jpeg-decoder`, whose chroma upsampling is
/// libjpeg's "fancy" (triangle, full-precision h2v2) one, as in PIL (libjpeg-turbo); `image`'s
/// zune-jpeg rounds between the vertical and horizontal upsampling steps and lands about twice
/// as far from PIL. `None` (not a JPEG, CMYK, or a decoding error) falls back to `image`.
fn decode_jpeg_like_libjpeg(bytes: &[u8]) -> Option<RgbImage> {
    if !bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return None;
    }
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    let pixels = dec.decode().ok()?;
    let info = dec.info()?;
    let (w, h) = (info.width as u32, info.height as u32);
    match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => RgbImage::from_raw(w, h, pixels),
        jpeg_decoder::PixelFormat::L8 => {
            RgbImage::from_raw(w, h, pixels.iter().flat_map(|&v| [v, v, v]).collect())
        }
        _ => None,
    }
}

fn apply(img: RgbImage, rule: Resize) -> std::result::Result<RgbImage, (u32, u32, String)> {
    match rule {
        Resize::Keep => Ok(img),
        Resize::Exact { h, w } | Resize::IfNot { h, w } => {
            if img.height() == h && img.width() == w {
                Ok(img)
            } else {
                resize_rgb(&img, h, w).map_err(|m| (h, w, m))
            }
        }
    }
}

/// Resizes to `h`×`w` like PIL `resize((w, h), BILINEAR)` (antialiased when downsampling).
///
/// PIL resamples horizontally first, rounds to 8 bits, then vertically; `fast_image_resize`
/// does the vertical pass first for 8-bit images, so the two passes are run separately here
/// (width, then height) to round in PIL's order.
pub fn resize_rgb(img: &RgbImage, h: u32, w: u32) -> std::result::Result<RgbImage, String> {
    if h == 0 || w == 0 || img.width() == 0 || img.height() == 0 {
        return Err(format!(
            "cannot resize {}x{} to {h}x{w}",
            img.height(),
            img.width()
        ));
    }
    let mut resizer = fr::Resizer::new();
    let opts =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear));
    let mut pass =
        |src: &[u8], sw: u32, sh: u32, dw: u32, dh: u32| -> std::result::Result<Vec<u8>, String> {
            let src = fr::images::ImageRef::new(sw, sh, src, fr::PixelType::U8x3)
                .map_err(|e| e.to_string())?;
            let mut dst = fr::images::Image::new(dw, dh, fr::PixelType::U8x3);
            resizer
                .resize(&src, &mut dst, &opts)
                .map_err(|e| e.to_string())?;
            Ok(dst.into_vec())
        };
    let (sw, sh) = img.dimensions();
    let mut buf = if w != sw {
        pass(img.as_raw(), sw, sh, w, sh)?
    } else {
        img.as_raw().clone()
    };
    if h != sh {
        buf = pass(&buf, w, sh, w, h)?;
    }
    RgbImage::from_raw(w, h, buf).ok_or_else(|| "resize produced a bad buffer".to_string())
}

/// Writes `img` into `out` (length `3·h·w`) in CHW order as torchvision's
/// `normalize(to_tensor(img), IMAGENET_MEAN, IMAGENET_STD)`: `(x / 255 − mean) / std` in f32.
///
/// # Panics
/// If `out.len() != 3 · width · height`.
pub fn normalize_chw(img: &RgbImage, out: &mut [f32]) {
    let plane = img.width() as usize * img.height() as usize;
    assert_eq!(
        out.len(),
        3 * plane,
        "normalize_chw: output length must be 3*h*w"
    );
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        r[i] = (px[0] as f32 / 255.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
        g[i] = (px[1] as f32 / 255.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1];
        b[i] = (px[2] as f32 / 255.0 - IMAGENET_MEAN[2]) / IMAGENET_STD[2];
    }
}
