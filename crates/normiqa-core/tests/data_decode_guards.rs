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

/// A patterned image (so the compressed formats hold more than a few bytes).
fn pattern(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 13 ^ y * 7) as u8, (x * y) as u8, (x + 3 * y) as u8]))
}

fn encoded(img: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format).unwrap();
    bytes
}

/// A `w`×`h` 8-bit BMP with a grey palette and the RLE8 (or RLE4) stream `rle`.
fn rle_bmp(w: i32, h: i32, rle4: bool, rle: &[u8]) -> Vec<u8> {
    let colours: u32 = if rle4 { 16 } else { 256 };
    let offset = 14 + 40 + 4 * colours;
    let mut b = Vec::new();
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&(offset + rle.len() as u32).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&offset.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&w.to_le_bytes());
    b.extend_from_slice(&h.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&(if rle4 { 4u16 } else { 8u16 }).to_le_bytes());
    b.extend_from_slice(&(if rle4 { 2u32 } else { 1u32 }).to_le_bytes());
    b.extend_from_slice(&(rle.len() as u32).to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&colours.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    for i in 0..colours {
        let v = (i * 255 / (colours - 1)) as u8;
        b.extend_from_slice(&[v, v, v, 0]);
    }
    b.extend_from_slice(rle);
    b
}

/// Every format `image` decodes for normiqa is whole or refused, as JPEG is: a file cut short
/// anywhere is an error naming it, never a partly grey image scored with exit 0 (a truncated RLE
/// BMP was scored where PIL refuses it).
#[test]
fn every_format_cut_short_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = pattern(48, 40);
    // 8 rows of 8 pixels: runs, literals, an end-of-line code each, then end-of-bitmap.
    let mut rle8 = Vec::new();
    for y in 0..8u8 {
        rle8.extend_from_slice(&[3, y * 20, 0, 4, 1, 2, 3, 4, 1, 200, 0, 0]);
    }
    rle8.extend_from_slice(&[0, 1]);
    let mut rle4 = Vec::new();
    for y in 0..8u8 {
        rle4.extend_from_slice(&[4, 0x12 + y, 0, 4, 0x34, 0x56, 0, 0]);
    }
    rle4.extend_from_slice(&[0, 1]);
    let files = [
        ("png", encoded(&img, image::ImageFormat::Png)),
        ("bmp", encoded(&img, image::ImageFormat::Bmp)),
        ("tif", encoded(&img, image::ImageFormat::Tiff)),
        ("webp", encoded(&img, image::ImageFormat::WebP)),
        ("rle8.bmp", rle_bmp(8, 8, false, &rle8)),
        ("rle4.bmp", rle_bmp(8, 8, true, &rle4)),
    ];
    let opts = DecodeOptions::default();
    for (name, bytes) in &files {
        let whole = write(dir.path(), &format!("whole.{name}"), bytes);
        let full = decode_one(&whole, &[], &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let n = bytes.len();
        // An RLE stream's last codes (end of line, end of bitmap) after its last pixel are
        // optional, as in PIL: a cut there leaves every pixel, so cut 1 byte only elsewhere.
        let last = if name.starts_with("rle") { n - 9 } else { n - 1 };
        for cut in [n / 4, n / 2, 3 * n / 4, n - 9, last] {
            let p = write(dir.path(), &format!("cut{cut}.{name}"), &bytes[..cut]);
            match decode_one(&p, &[], &opts) {
                Err(e) => assert!(e.to_string().contains(&format!("cut{cut}.{name}")), "{e}"),
                Ok(im) => panic!("{name} cut to {cut} of {n} bytes was decoded (same as whole: {})", im == full),
            }
        }
    }
}

/// An RLE stream that ends (its end-of-bitmap code) before its last row leaves rows missing:
/// refused, as PIL refuses it ("not enough image data"), where `image` filled them with black.
#[test]
fn an_rle_bmp_that_ends_before_its_last_row_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rle = Vec::new();
    for y in 0..4u8 {
        rle.extend_from_slice(&[8, y * 20, 0, 0]);
    }
    rle.extend_from_slice(&[0, 1]);
    let p = write(dir.path(), "short.bmp", &rle_bmp(8, 8, false, &rle));
    let e = decode_one(&p, &[], &DecodeOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("short.bmp") && msg.contains("row 5 of 8") && msg.contains("not enough image data"), "{msg}");
    // the same rows for a 8x4 image: whole
    let p = write(dir.path(), "whole.bmp", &rle_bmp(8, 4, false, &rle));
    assert_eq!(decode_one(&p, &[], &DecodeOptions::default()).unwrap().dimensions(), (8, 4));
}

/// A PNG of 8x8 pixels with the chunk `kind` holding `data` right after its header.
fn png_with_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let bytes = encoded(&pattern(8, 8), image::ImageFormat::Png);
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(&chunk[4..]);
    chunk.extend_from_slice(&crc.sum().to_be_bytes());
    // signature (8) + IHDR (25)
    [&bytes[..33], &chunk[..], &bytes[33..]].concat()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// Ancillary chunks are bounded as pixels are: an ICC profile or compressed text that inflates
/// past 16 MiB is refused, naming the file and the chunk (a 1 GiB iCCP cost ~1.7 GB of memory);
/// ordinary ones decode.
#[test]
fn png_ancillary_chunks_that_inflate_past_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = zlib(&vec![0u8; 40 << 20]);
    let small = zlib(b"a short comment");
    let cases: [(&str, &[u8; 4], Vec<u8>, bool); 5] = [
        ("icc", b"iCCP", [&b"icc\0\0"[..], &bomb].concat(), false),
        ("ztxt", b"zTXt", [&b"Comment\0\0"[..], &bomb].concat(), false),
        ("itxt", b"iTXt", [&b"Comment\0\x01\0en\0\0"[..], &bomb].concat(), false),
        ("ztxt-small", b"zTXt", [&b"Comment\0\0"[..], &small].concat(), true),
        ("text", b"tEXt", b"Comment\0hello".to_vec(), true),
    ];
    for (name, kind, data, ok) in cases {
        let p = write(dir.path(), &format!("{name}.png"), &png_with_chunk(kind, &data));
        let r = decode_one(&p, &[], &DecodeOptions::default());
        match (r, ok) {
            (Ok(im), true) => assert_eq!(im, pattern(8, 8), "{name}"),
            (Err(e), false) => {
                let msg = e.to_string();
                let kind = std::str::from_utf8(kind).unwrap();
                assert!(msg.contains(&format!("{name}.png")) && msg.contains(kind) && msg.contains("16 MiB"), "{msg}");
            }
            (r, _) => panic!("{name}: {:?}", r.map(|i| i.dimensions())),
        }
    }
}
