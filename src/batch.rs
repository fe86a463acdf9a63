//! Decoded u8 images → normalised NCHW float tensors (torchvision `to_tensor` + `normalize` with
//! the ImageNet mean/std), done inside libtorch for speed.

use anyhow::{bail, Result};
use image::RgbImage;
use normiqa_core::data::decode::{IMAGENET_MEAN, IMAGENET_STD};
use tch::{Device, Kind, Tensor};

/// Stacks same-size images into a [B, 3, H, W] f32 tensor on `device`, normalised.
///
/// The tensor keeps the pixels' interleaved layout (NHWC memory viewed as NCHW: "channels-last"
/// strides), as PyTorch's `from_numpy(..).permute(0, 3, 1, 2)` does. libtorch's CPU convolutions
/// (oneDNN) then run channels-last through the whole network, which is much faster for
/// EfficientNet's depthwise convolutions: 80 → 60 ms per 500×500 Lite0 image measured here.
pub fn to_tensor(images: &[&RgbImage], device: Device) -> Result<Tensor> {
    let Some(first) = images.first() else {
        bail!("empty batch")
    };
    let (w, h) = first.dimensions();
    let mut buf = Vec::with_capacity(images.len() * (w * h * 3) as usize);
    for im in images {
        if im.dimensions() != (w, h) {
            bail!(
                "images of one batch must have one size: {}x{} and {}x{}",
                w,
                h,
                im.width(),
                im.height()
            );
        }
        buf.extend_from_slice(im.as_raw());
    }
    let x = Tensor::from_slice(&buf)
        .to_device(device)
        .view([images.len() as i64, h as i64, w as i64, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
        / 255.0;
    let mean = Tensor::from_slice(&IMAGENET_MEAN)
        .to_device(device)
        .view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&IMAGENET_STD)
        .to_device(device)
        .view([1, 3, 1, 1]);
    Ok((x - mean) / std)
}

/// Splits `indices` into runs of at most `max` consecutive images that share one size.
pub fn same_size_chunks(images: &[RgbImage], indices: &[usize], max: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &i in indices {
        match out.last_mut() {
            Some(last)
                if last.len() < max && images[last[0]].dimensions() == images[i].dimensions() =>
            {
                last.push(i)
            }
            _ => out.push(vec![i]),
        }
    }
    out
}
