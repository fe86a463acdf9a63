use image::RgbImage;
use normiqa_core::data::decode::{
    decode_all, decode_one, normalize_chw, resize_rgb, DecodeOptions, Resize, IMAGENET_MEAN,
    IMAGENET_STD,
};
use normiqa_core::data::{DataError, LoadOptions};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/datasets")
}

fn shared_clive() -> Option<PathBuf> {
    let base = std::env::var_os("NORMIQA_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let p = base.join("clive");
    p.join("mos.csv").is_file().then_some(p)
}

/// Same formula as synth() in tests/data/datasets/pil/make_expected.py.
fn synth(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v =
            |c: u32| ((x * 7 + y * 13 + c * 50 + (x * y) % 17 + (x * x * 3 + y) % 29) % 256) as u8;
        image::Rgb([v(0), v(1), v(2)])
    })
}

fn expected() -> serde_json::Value {
    let p = fixtures().join("pil/resize_expected.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn diffs(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let mut max = 0u8;
    let mut sum = 0u64;
    for (x, y) in a.iter().zip(b) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        sum += d as u64;
    }
    (max, sum as f64 / a.len() as f64)
}

#[test]
fn resize_matches_pil_bilinear_on_synthetic_images() {
    for case in expected()["synthetic"].as_array().unwrap() {
        let g = |k: &str| case[k].as_u64().unwrap() as u32;
        let want: Vec<u8> = case["pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let got = resize_rgb(&synth(g("src_w"), g("src_h")), g("h"), g("w")).unwrap();
        assert_eq!((got.width(), got.height()), (g("w"), g("h")));
        let (max, mean) = diffs(got.as_raw(), &want);
        eprintln!(
            "{}x{} -> {}x{}: max {max}, mean {mean:.4}",
            g("src_h"),
            g("src_w"),
            g("h"),
            g("w")
        );
        assert!(max <= 1 && mean < 0.05, "max {max} mean {mean}");
    }
}

#[test]
fn clive_rule_matches_pil_on_the_two_non_500_images() {
    let Some(root) = shared_clive() else {
        return eprintln!("skipped: no shared CLIVE");
    };
    for case in expected()["clive"].as_array().unwrap() {
        let name = case["image"].as_str().unwrap();
        let img = decode_one(
            &root.join("images").join(name),
            &[Resize::CLIVE],
            &DecodeOptions::default(),
        )
        .unwrap();
        assert_eq!(img.dimensions(), (500, 500));
        let grid: Vec<u32> = case["grid"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let want: Vec<u8> = case["grid_pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let mut got = Vec::new();
        for &y in &grid {
            for &x in &grid {
                got.extend(img.get_pixel(x, y).0);
            }
        }
        let (max, mean) = diffs(&got, &want);
        let mean_rgb: Vec<f64> = (0..3)
            .map(|c| {
                img.as_raw()
                    .iter()
                    .skip(c)
                    .step_by(3)
                    .map(|&v| v as f64)
                    .sum::<f64>()
                    / 250_000.0
            })
            .collect();
        let want_mean: Vec<f64> = case["mean_rgb"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        eprintln!(
            "{name}: grid max {max} mean {mean:.3}; mean RGB {mean_rgb:?} vs PIL {want_mean:?}"
        );
        assert!(max <= 3 && mean < 0.5, "{name}: max {max} mean {mean}");
        for c in 0..3 {
            assert!(
                (mean_rgb[c] - want_mean[c]).abs() < 0.15,
                "{name} channel {c}"
            );
        }
    }
}

#[test]
fn resize_rules() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.png");
    synth(40, 30).save(&p).unwrap();
    assert_eq!(
        decode_one(&p, &[], &DecodeOptions::default()).unwrap(),
        synth(40, 30)
    );
    assert_eq!(
        decode_one(&p, &[Resize::Keep], &DecodeOptions::default())
            .unwrap()
            .dimensions(),
        (40, 30)
    );
    assert_eq!(
        decode_one(
            &p,
            &[Resize::IfNot { h: 30, w: 40 }],
            &DecodeOptions::default()
        )
        .unwrap(),
        synth(40, 30)
    );
    assert_eq!(
        decode_one(
            &p,
            &[Resize::Exact { h: 30, w: 40 }],
            &DecodeOptions::default()
        )
        .unwrap(),
        synth(40, 30)
    );
    let img = decode_one(
        &p,
        &[
            Resize::IfNot { h: 20, w: 20 },
            Resize::Exact { h: 10, w: 12 },
        ],
        &DecodeOptions::default(),
    )
    .unwrap();
    assert_eq!(img.dimensions(), (12, 10));
    let e = decode_one(
        &p,
        &[Resize::Exact { h: 0, w: 5 }],
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, DataError::Resize { .. }) && e.to_string().contains("a.png"),
        "{e}"
    );
}

#[test]
fn decode_all_fixtures_in_order() {
    let ds =
        normiqa_core::data::clive::load(fixtures().join("clive_official"), &LoadOptions::default())
            .unwrap();
    let paths: Vec<PathBuf> = ds.samples.iter().map(|s| s.path.clone()).collect();
    let imgs = decode_all(&paths, &[], &DecodeOptions::default()).unwrap();
    assert_eq!(imgs.len(), 5);
    assert_eq!(imgs[2].dimensions(), (12, 10), "1000.JPG is 12x10");
    for (p, im) in paths.iter().zip(&imgs) {
        assert_eq!(&decode_one(p, &[], &DecodeOptions::default()).unwrap(), im);
    }
    let kadid =
        normiqa_core::data::kadid::load(fixtures().join("kadid10k"), &LoadOptions::default())
            .unwrap();
    let tid =
        normiqa_core::data::tid2013::load(fixtures().join("tid2013"), &LoadOptions::default())
            .unwrap();
    let paths: Vec<PathBuf> = kadid
        .samples
        .iter()
        .chain(&tid.samples)
        .map(|s| s.path.clone())
        .collect();
    assert!(decode_all(
        &paths,
        &[Resize::Exact { h: 4, w: 4 }],
        &DecodeOptions::default()
    )
    .unwrap()
    .iter()
    .all(|i| i.dimensions() == (4, 4)));
}

#[test]
fn bad_images_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // corrupt: a PNG cut short
    let good = dir.path().join("good.png");
    synth(16, 16).save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    let e = decode_one(&corrupt, &[], &DecodeOptions::default()).unwrap_err();
    assert!(
        matches!(e, DataError::Decode { .. } | DataError::Incomplete { .. })
            && e.to_string().contains("corrupt.png"),
        "{e}"
    );
    // garbage in a .jpg
    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    let e = decode_one(&junk, &[], &DecodeOptions::default()).unwrap_err();
    assert!(e.to_string().contains("junk.jpg"), "{e}");
    // unsupported format
    let txt = dir.path().join("notes.gif");
    std::fs::write(&txt, b"hello").unwrap();
    let e = decode_one(&txt, &[], &DecodeOptions::default()).unwrap_err();
    assert!(e.to_string().contains("notes.gif"), "{e}");
    // missing
    let e = decode_one(
        Path::new("/nonexistent/missing.png"),
        &[],
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, DataError::Io { .. }) && e.to_string().contains("missing.png"),
        "{e}"
    );
    // decode_all reports the bad one
    let e = decode_all(
        &[good.clone(), corrupt.clone(), good],
        &[],
        &DecodeOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("corrupt.png"), "{e}");
}

#[test]
fn normalize_matches_torchvision() {
    let img = RgbImage::from_fn(3, 2, |x, y| {
        image::Rgb([(x * 100) as u8, (y * 255) as u8, 128])
    });
    let mut out = vec![0f32; 18];
    normalize_chw(&img, &mut out);
    // channel-major: R plane then G then B; pixel (x=1, y=0) is index 1
    assert_eq!(out[1], (100f32 / 255.0 - 0.485) / 0.229);
    assert_eq!(out[6 + 3], (1.0 - 0.456) / 0.224); // G at (0, 1)
    assert_eq!(out[12], (128f32 / 255.0 - 0.406) / 0.225);
    assert_eq!(out[0], -IMAGENET_MEAN[0] / IMAGENET_STD[0]);
}

#[test]
#[should_panic]
fn normalize_checks_length() {
    normalize_chw(&RgbImage::new(2, 2), &mut [0f32; 11]);
}

/// Bench: `cargo test -p normiqa-core --release --test data_decode -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_decode_all_clive() {
    let Some(root) = shared_clive() else {
        return eprintln!("skipped: no shared CLIVE");
    };
    let ds = normiqa_core::data::clive::load(&root, &LoadOptions::default()).unwrap();
    let paths = ds.paths();
    for run in 0..2 {
        let t = std::time::Instant::now();
        let imgs = decode_all(&paths, &[Resize::CLIVE], &DecodeOptions::default()).unwrap();
        let dt = t.elapsed();
        assert_eq!(imgs.len(), 1162);
        assert!(imgs.iter().all(|i| i.dimensions() == (500, 500)));
        eprintln!(
            "run {run}: decode_all CLIVE ({} images, {} rayon threads): {:.2} s",
            imgs.len(),
            rayon::current_num_threads(),
            dt.as_secs_f64()
        );
    }
}

/// Compares with PIL's decode of every CLIVE image: dump them with
/// `python make_expected.py ../shared/data /tmp/pil_clive` (from the checkout), then run with
/// `NORMIQA_PIL_DUMP=/tmp/pil_clive cargo test ... -- --ignored clive_matches_pil --nocapture`.
#[test]
#[ignore]
fn clive_matches_pil() {
    let Some(root) = shared_clive() else {
        return eprintln!("skipped: no shared CLIVE");
    };
    let Some(dump) = std::env::var_os("NORMIQA_PIL_DUMP").map(PathBuf::from) else {
        return eprintln!("skipped: set NORMIQA_PIL_DUMP");
    };
    let ds = normiqa_core::data::clive::load(&root, &LoadOptions::default()).unwrap();
    let (mut jpg_sum, mut jpg_n, mut jpg_max) = (0f64, 0usize, 0u8);
    let (mut webp_max, mut hist) = (0u8, [0usize; 256]);
    for s in &ds.samples {
        let ours = decode_one(&s.path, &[Resize::CLIVE], &DecodeOptions::default()).unwrap();
        let stem = normiqa_core::data::clive::stem(&s.name);
        let pil = image::open(dump.join(format!("{stem}.png")))
            .unwrap()
            .into_rgb8();
        let (max, mean) = diffs(ours.as_raw(), pil.as_raw());
        if s.name.ends_with(".JPG") {
            jpg_sum += mean;
            jpg_n += 1;
            jpg_max = jpg_max.max(max);
            for (a, b) in ours.as_raw().iter().zip(pil.as_raw()) {
                hist[a.abs_diff(*b) as usize] += 1;
            }
        } else {
            webp_max = webp_max.max(max);
        }
        if stem == "1024" || stem == "1113" {
            eprintln!(
                "{}: decode+resize vs PIL: max {max}, mean {mean:.4}",
                s.name
            );
        }
    }
    eprintln!(
        "JPEG ({jpg_n}): mean abs diff {:.4} grey levels, max {jpg_max}; histogram {:?}",
        jpg_sum / jpg_n as f64,
        &hist[..8]
    );
    eprintln!("WebP lossless: max diff {webp_max}");
    assert_eq!(webp_max, 0);
    assert!(jpg_sum / (jpg_n as f64) < 0.12);
}

#[test]
fn max_side_downscales_only_larger_images_keeping_the_aspect() {
    use normiqa_core::data::decode::max_side_dims;
    assert_eq!(max_side_dims(150, 2100, 1050), (75, 1050));
    assert_eq!(max_side_dims(3000, 4000, 1024), (768, 1024));
    assert_eq!(max_side_dims(1, 5000, 100), (1, 100));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wide.png");
    let img = image::RgbImage::from_fn(300, 120, |x, y| {
        image::Rgb([(x % 256) as u8, (y * 2) as u8, ((x + y) % 256) as u8])
    });
    img.save(&p).unwrap();
    let got = decode_one(&p, &[Resize::MaxSide { n: 150 }], &Default::default()).unwrap();
    assert_eq!(got.dimensions(), (150, 60));
    // The project's PIL-like resize, as --resize 60 150 would do.
    assert_eq!(got, resize_rgb(&img, 60, 150).unwrap());
    let same = decode_one(&p, &[Resize::MaxSide { n: 300 }], &Default::default()).unwrap();
    assert_eq!(same, img);
}
