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
    /// Downscale, keeping the aspect ratio, so that the longer side is at most `n` (the shorter
    /// side rounded, at least 1); smaller images are left alone.
    MaxSide { n: u32 },
}

impl Resize {
    /// The reference LinearityIQA rule for CLIVE: images that are not 500×500 become 500×500.
    pub const CLIVE: Resize = Resize::IfNot { h: 500, w: 500 };
}

/// ImageNet channel means (torchvision `Normalize`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// PIL's `Image.MAX_IMAGE_PIXELS`: the default largest image decoded, in pixels (width × height;
/// about 256 MB as 8-bit RGB). A 632-byte JPEG can declare 65000×65000 (12.7 GB).
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 89_478_485;

/// How images are decoded: what is refused by default, and the opt-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DecodeOptions {
    /// Score JPEGs whose data ends early or is corrupt (the missing part comes out grey), as
    /// PIL's `LOAD_TRUNCATED_IMAGES`; refused by default. Other formats are always refused
    /// when truncated (their decoders return no partial image).
    pub allow_truncated: bool,
    /// The largest image decoded or produced by a resize, in pixels (width × height), checked
    /// on the size a file declares before anything is allocated; 0 = no limit.
    pub max_image_pixels: u64,
}

impl Default for DecodeOptions {
    /// Truncated images refused; [`DEFAULT_MAX_IMAGE_PIXELS`].
    fn default() -> Self {
        DecodeOptions {
            allow_truncated: false,
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
        }
    }
}

impl DecodeOptions {
    /// Whether a `w`×`h` image is within [`Self::max_image_pixels`].
    pub fn allows(&self, w: u32, h: u32) -> bool {
        self.max_image_pixels == 0 || u64::from(w) * u64::from(h) <= self.max_image_pixels
    }

    fn check_declared(&self, path: &Path, w: u32, h: u32) -> Result<()> {
        if self.allows(w, h) {
            return Ok(());
        }
        Err(DataError::TooManyPixels {
            path: path.to_path_buf(),
            width: w,
            height: h,
            limit: self.max_image_pixels,
        })
    }

    /// `image`'s allocation limit: its default (512 MiB) or what the pixel limit needs as
    /// 16-bit RGBA, whichever is larger; none without a pixel limit.
    fn image_limits(&self) -> image::Limits {
        let mut l = image::Limits::default();
        l.max_alloc = match self.max_image_pixels {
            0 => None,
            n => Some(l.max_alloc.unwrap_or(0).max(n.saturating_mul(8))),
        };
        l
    }
}

/// Decodes one image file to RGB8 and applies `resize` in order. Missing, unreadable, corrupt,
/// truncated (unless allowed) or unsupported files, and images or resize targets over the pixel
/// limit, are errors naming the file.
pub fn decode_one(path: &Path, resize: &[Resize], opts: &DecodeOptions) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    decode_bytes(bytes, path, resize, opts)
}

/// Decodes an image held in memory exactly as [`decode_one`] decodes a file with these bytes
/// (`serve` scores uploads with it); `path` only names the image in errors.
pub fn decode_bytes(
    bytes: Vec<u8>,
    path: &Path,
    resize: &[Resize],
    opts: &DecodeOptions,
) -> Result<RgbImage> {
    let mut rgb = if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        decode_jpeg(path, bytes, opts)?
    } else {
        decode_other(path, bytes, opts)?
    };
    for r in resize {
        rgb = apply(rgb, *r, opts).map_err(|(h, w, msg)| DataError::Resize {
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
pub fn decode_all(
    paths: &[PathBuf],
    resize: &[Resize],
    opts: &DecodeOptions,
) -> Result<Vec<RgbImage>> {
    paths
        .par_iter()
        .map(|p| decode_one(p, resize, opts))
        .collect()
}

/// A JPEG: its declared size is checked first, then that it is whole (see [`super::jpeg`]).
fn decode_jpeg(path: &Path, bytes: Vec<u8>, opts: &DecodeOptions) -> Result<RgbImage> {
    let info = super::jpeg::inspect(&bytes).map_err(|detail| DataError::Truncated {
        path: path.to_path_buf(),
        detail,
    })?;
    opts.check_declared(path, info.width, info.height)?;
    match info.whole {
        Ok(()) => match decode_jpeg_like_libjpeg(&bytes) {
            Some(rgb) => Ok(rgb),
            None => decode_other(path, bytes, opts),
        },
        Err(detail) if !opts.allow_truncated => Err(DataError::Truncated {
            path: path.to_path_buf(),
            detail,
        }),
        // zune-jpeg (through `image`) decodes what is there and leaves the rest grey
        Err(_) => decode_other(path, bytes, opts),
    }
}

/// Any format `image` reads; the header's size is checked before decoding, and what `image`
/// would not refuse itself: a BMP whose pixel data is cut short ([`super::bmp`]), a PNG chunk
/// cut off or an ancillary chunk over its limit ([`super::png_chunks`]).
fn decode_other(path: &Path, bytes: Vec<u8>, opts: &DecodeOptions) -> Result<RgbImage> {
    let decode_err = |source| DataError::Decode {
        path: path.to_path_buf(),
        source,
    };
    check_container(path, &bytes)?;
    let reader = || {
        let mut r = image::ImageReader::new(Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(io_err(path))?;
        r.limits(opts.image_limits());
        Ok::<_, DataError>(r)
    };
    let (w, h) = reader()?.into_dimensions().map_err(decode_err)?;
    opts.check_declared(path, w, h)?;
    Ok(reader()?.decode().map_err(decode_err)?.into_rgb8())
}

/// The checks of [`decode_other`] that `image` lacks, by the file's signature.
fn check_container(path: &Path, b: &[u8]) -> Result<()> {
    let incomplete = |format, detail| DataError::Incomplete {
        path: path.to_path_buf(),
        format,
        detail,
    };
    if b.starts_with(b"BM") {
        super::bmp::check_whole(b).map_err(|d| incomplete("BMP", d))?;
    } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        use super::png_chunks::{check, Refusal};
        check(b).map_err(|r| match r {
            Refusal::Truncated(d) => incomplete("PNG", d),
            Refusal::TooLarge(detail) => DataError::Ancillary {
                path: path.to_path_buf(),
                detail,
            },
        })?;
    }
    Ok(())
}

/// JPEGs (RGB or greyscale) are decoded with `jpeg-decoder`, whose chroma upsampling is
/// libjpeg's "fancy" (triangle, full-precision h2v2) one, as in PIL (libjpeg-turbo); `image`'s
/// zune-jpeg rounds between the vertical and horizontal upsampling steps and lands about twice
/// as far from PIL. `None` (CMYK, or a decoding error) falls back to `image`.
fn decode_jpeg_like_libjpeg(bytes: &[u8]) -> Option<RgbImage> {
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

fn apply(
    img: RgbImage,
    rule: Resize,
    opts: &DecodeOptions,
) -> std::result::Result<RgbImage, (u32, u32, String)> {
    match rule {
        Resize::Keep => Ok(img),
        Resize::Exact { h, w } | Resize::IfNot { h, w } => {
            if img.height() == h && img.width() == w {
                Ok(img)
            } else if !opts.allows(w, h) {
                Err((h, w, resize_limit_msg(h, w, opts.max_image_pixels)))
            } else {
                resize_rgb(&img, h, w).map_err(|m| (h, w, m))
            }
        }
        Resize::MaxSide { n } => {
            let (w, h) = img.dimensions();
            if w.max(h) <= n {
                return Ok(img);
            }
            let (h, w) = max_side_dims(h, w, n);
            resize_rgb(&img, h, w).map_err(|m| (h, w, m))
        }
    }
}

/// Why a resize to `h`×`w` is refused under the pixel limit `limit`.
pub fn resize_limit_msg(h: u32, w: u32, limit: u64) -> String {
    format!(
        "{} pixels, more than the limit of {limit}; choose a smaller --resize or raise \
         --max-image-pixels (0 = no limit)",
        u64::from(h) * u64::from(w)
    )
}

/// The (height, width) of an `h`×`w` image scaled so that its longer side is `n`.
pub fn max_side_dims(h: u32, w: u32, n: u32) -> (u32, u32) {
    let scale = |side: u32| ((side as f64 * n as f64 / h.max(w) as f64).round() as u32).clamp(1, n);
    (scale(h), scale(w))
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
