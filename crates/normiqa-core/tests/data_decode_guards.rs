//! Decoding refuses truncated JPEGs (unless allowed) and images or resizes over the pixel limit,
//! checked on the declared size before anything is allocated.
use std::path::{Path, PathBuf};

use normiqa_core::data::decode::{decode_one, DecodeOptions, Resize, DEFAULT_MAX_IMAGE_PIXELS};
use normiqa_core::data::DataError;

fn sample_jpeg(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/clive-sample/images")
        .join(name)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

const ALLOW_TRUNCATED: DecodeOptions = DecodeOptions {
    allow_truncated: true,
    max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
};

fn assert_truncated(e: DataError, file: &str) {
    let msg = e.to_string();
    assert!(matches!(e, DataError::Truncated { .. }), "{msg}");
    assert!(
        msg.contains(file) && msg.contains("--allow-truncated"),
        "{msg}"
    );
}

#[test]
fn a_jpeg_cut_to_a_third_is_refused_and_decodes_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let whole = sample_jpeg("1001.JPG");
    let bytes = std::fs::read(&whole).unwrap();
    let full = decode_one(&whole, &[], &DecodeOptions::default()).unwrap();
    let cut = write(dir.path(), "cut.jpg", &bytes[..bytes.len() / 3]);
    assert_truncated(
        decode_one(&cut, &[], &DecodeOptions::default()).unwrap_err(),
        "cut.jpg",
    );
    let partial = decode_one(&cut, &[], &ALLOW_TRUNCATED).unwrap();
    assert_eq!(partial.dimensions(), full.dimensions());
    assert_ne!(partial, full);
    // the top rows came through (decoded by zune-jpeg there, hence ±2 in the upsampling)
    let row = 3 * full.width() as usize;
    let worst = partial.as_raw()[..row]
        .iter()
        .zip(&full.as_raw()[..row])
        .map(|(a, b)| a.abs_diff(*b))
        .max();
    assert!(worst <= Some(2), "{worst:?}");
}

#[test]
fn a_jpeg_with_fewer_scan_lines_than_declared_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(sample_jpeg("1013.JPG")).unwrap();
    // cut short, then closed with an end-of-image marker: both decoders fill the rest with grey
    let mut closed = bytes[..bytes.len() / 2].to_vec();
    closed.extend_from_slice(&[0xff, 0xd9]);
    let p = write(dir.path(), "closed.jpg", &closed);
    let e = decode_one(&p, &[], &DecodeOptions::default()).unwrap_err();
    assert!(e.to_string().contains("blocks"), "{e}");
    assert_truncated(e, "closed.jpg");
    assert!(decode_one(&p, &[], &ALLOW_TRUNCATED).is_ok());
    // all data but no end-of-image marker
    let p = write(dir.path(), "noeoi.jpg", &bytes[..bytes.len() - 2]);
    assert_truncated(
        decode_one(&p, &[], &DecodeOptions::default()).unwrap_err(),
        "noeoi.jpg",
    );
}

#[test]
fn every_sample_jpeg_is_whole() {
    let dir = sample_jpeg("");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        decode_one(&p, &[], &DecodeOptions::default()).unwrap();
        n += 1;
    }
    assert_eq!(n, 120);
}

/// A small baseline JPEG whose frame header declares `w`×`h`.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let mut bytes = Vec::new();
    let img = image::RgbImage::from_pixel(16, 16, image::Rgb([90, 120, 200]));
    image::codecs::jpeg::JpegEncoder::new(&mut bytes)
        .encode_image(&img)
        .unwrap();
    let sof = bytes.windows(2).position(|m| m == [0xff, 0xc0]).unwrap();
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bytes
}

/// A small PNG whose header declares `w`×`h` (CRC fixed).
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    let img = image::RgbImage::from_pixel(16, 16, image::Rgb([90, 120, 200]));
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .unwrap();
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    bytes
}

fn assert_too_many(e: DataError, file: &str, dims: &str) {
    let msg = e.to_string();
    assert!(matches!(e, DataError::TooManyPixels { .. }), "{msg}");
    assert!(
        msg.contains(file) && msg.contains(dims) && msg.contains("--max-image-pixels"),
        "{msg}"
    );
}

#[test]
fn decompression_bombs_are_refused_from_their_header() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = jpeg_declaring(65000, 65000);
    assert!(jpeg.len() < 1000, "{}", jpeg.len());
    let p = write(dir.path(), "bomb.jpg", &jpeg);
    assert_too_many(
        decode_one(
            &p,
            &[Resize::Exact { h: 224, w: 224 }],
            &DecodeOptions::default(),
        )
        .unwrap_err(),
        "bomb.jpg",
        "65000x65000",
    );
    let p = write(dir.path(), "bomb.png", &png_declaring(65000, 65000));
    assert_too_many(
        decode_one(&p, &[], &DecodeOptions::default()).unwrap_err(),
        "bomb.png",
        "65000x65000",
    );
}

#[test]
fn the_pixel_limit_can_be_raised_or_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "small.jpg", &jpeg_declaring(16, 16));
    let limit = |n| DecodeOptions {
        allow_truncated: false,
        max_image_pixels: n,
    };
    assert_too_many(
        decode_one(&p, &[], &limit(255)).unwrap_err(),
        "small.jpg",
        "16x16",
    );
    assert_eq!(
        decode_one(&p, &[], &limit(256)).unwrap().dimensions(),
        (16, 16)
    );
    assert_eq!(
        decode_one(&p, &[], &limit(0)).unwrap().dimensions(),
        (16, 16)
    );
}

#[test]
fn a_resize_target_over_the_limit_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "small.jpg", &jpeg_declaring(16, 16));
    let e = decode_one(
        &p,
        &[Resize::Exact { h: 60000, w: 60000 }],
        &DecodeOptions::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            DataError::Resize {
                h: 60000,
                w: 60000,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("small.jpg")
            && msg.contains("3600000000")
            && msg.contains("--max-image-pixels"),
        "{msg}"
    );
}
