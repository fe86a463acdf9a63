//! Tests of the KADID-10k synthetic distortions and dataset generation.

use image::RgbImage;
use normiqa_core::synth::{
    apply, embedded_references, generate, write_embedded_references, Distortion, Family,
    GenerateOptions,
};

/// Private PSNR (8-bit peak), so these tests do not depend on `fr`.
fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn mean(a: &RgbImage) -> f64 {
    a.as_raw().iter().map(|&v| v as f64).sum::<f64>() / a.as_raw().len() as f64
}

fn std(a: &RgbImage) -> f64 {
    let m = mean(a);
    (a.as_raw()
        .iter()
        .map(|&v| (v as f64 - m).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64)
        .sqrt()
}

/// 96x96 centre crop of an embedded Kodak reference (motorbikes: detailed, colourful).
fn test_image() -> RgbImage {
    let refs = embedded_references();
    let (_, img) = refs.iter().find(|(n, _)| *n == "kodim05").unwrap();
    image::imageops::crop_imm(img, 16, 16, 96, 96).to_image()
}

#[test]
fn enum_ids_names_families() {
    assert_eq!(Distortion::ALL.len(), 25);
    for (i, d) in Distortion::ALL.iter().enumerate() {
        assert_eq!(d.id() as usize, i + 1);
        assert_eq!(d.name().parse::<Distortion>().unwrap(), *d);
        assert_eq!(d.id().to_string().parse::<Distortion>().unwrap(), *d);
        assert_eq!(Distortion::from_id(d.id()), Some(*d));
        assert_eq!(d.to_string(), d.name());
    }
    assert_eq!(Distortion::GaussianBlur.name(), "gaussian_blur");
    assert_eq!(Distortion::Jpeg2000.name(), "jpeg2000");
    assert_eq!(Distortion::ContrastChange.id(), 25);
    assert_eq!(
        "Color-Saturation-HSV".parse::<Distortion>().unwrap(),
        Distortion::ColorSaturationHsv
    );
    assert!("sharpen".parse::<Distortion>().is_err());
    assert!("0".parse::<Distortion>().is_err() && "26".parse::<Distortion>().is_err());
    let count = |f: Family| Distortion::ALL.iter().filter(|d| d.family() == f).count();
    assert_eq!(
        [
            Family::Blur,
            Family::Color,
            Family::Compression,
            Family::Noise,
            Family::Brightness,
            Family::Spatial,
            Family::Sharpness
        ]
        .map(count),
        [3, 5, 2, 5, 3, 5, 2]
    );
}

#[test]
fn level_out_of_range_is_an_error_naming_it() {
    let img = test_image();
    for lvl in [0u8, 6, 255] {
        let e = apply(Distortion::MotionBlur, &img, lvl, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&lvl.to_string()) && e.contains("motion_blur"),
            "{e}"
        );
    }
    assert!(apply(Distortion::Jpeg, &RgbImage::new(0, 0), 1, 0).is_err());
}

#[test]
fn every_type_and_level_keeps_size_and_is_deterministic() {
    let img = test_image();
    for d in Distortion::ALL {
        for level in 1..=5 {
            let a = apply(d, &img, level, 7).unwrap();
            let b = apply(d, &img, level, 7).unwrap();
            assert_eq!(a.dimensions(), img.dimensions(), "{d} level {level}");
            assert!(
                a.as_raw() == b.as_raw(),
                "{d} level {level} not deterministic"
            );
        }
    }
}

#[test]
fn odd_and_tiny_sizes_work() {
    for (w, h) in [(37u32, 23u32), (8, 8), (1, 1)] {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x + y) * 5) as u8])
        });
        for d in Distortion::ALL {
            for level in [1, 5] {
                let out = apply(d, &img, level, 3).unwrap_or_else(|e| panic!("{d} {w}x{h}: {e}"));
                assert_eq!(out.dimensions(), (w, h), "{d}");
            }
        }
    }
}

#[test]
fn random_types_depend_on_the_seed() {
    let img = test_image();
    use Distortion::*;
    for d in [
        MotionBlur,
        ColorShift,
        WhiteNoise,
        WhiteNoiseColorComponent,
        ImpulseNoise,
        MultiplicativeNoise,
        Denoise,
        Jitter,
        NonEccentricityPatch,
        ColorBlock,
    ] {
        let a = apply(d, &img, 5, 1).unwrap();
        let b = apply(d, &img, 5, 2).unwrap();
        assert!(a.as_raw() != b.as_raw(), "{d} ignores its seed");
    }
}

#[test]
fn psnr_falls_as_level_rises() {
    let img = test_image();
    use Distortion::*;
    let psnr_types = [
        GaussianBlur,
        LensBlur,
        MotionBlur,
        ColorDiffusion,
        ColorShift,
        ColorQuantization,
        ColorSaturationHsv,
        ColorSaturationLab,
        Jpeg2000,
        Jpeg,
        WhiteNoise,
        WhiteNoiseColorComponent,
        ImpulseNoise,
        MultiplicativeNoise,
        Denoise,
        Jitter,
        NonEccentricityPatch,
        Pixelate,
        Quantization,
        ColorBlock,
        HighSharpen,
    ];
    let mut report = String::new();
    let mut bad = Vec::new();
    let refs = embedded_references();
    for d in psnr_types {
        let p: Vec<f64> = if d == ColorShift {
            // A 12 px green shift saturates the error on one small crop; pool the MSE over
            // all six 128x128 references instead.
            (1..=5)
                .map(|l| {
                    let mse = refs
                        .iter()
                        .map(|(_, r)| 10f64.powf(-psnr(r, &apply(d, r, l, 11).unwrap()) / 10.0))
                        .sum::<f64>();
                    -10.0 * (mse / refs.len() as f64).log10()
                })
                .collect()
        } else {
            (1..=5)
                .map(|l| psnr(&img, &apply(d, &img, l, 11).unwrap()))
                .collect()
        };
        report += &format!(
            "{d:>28}: {}\n",
            p.iter()
                .map(|v| format!("{v:6.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if p.windows(2).any(|w| !(w[1] < w[0])) {
            bad.push(d);
        }
        assert!(p[4] < 40.0, "{d}: level 5 is too mild ({:.2} dB)", p[4]);
    }
    println!("{report}");
    assert!(
        bad.is_empty(),
        "PSNR not strictly decreasing for {bad:?}\n{report}"
    );
}

#[test]
fn brightness_and_contrast_move_monotonically() {
    let img = test_image();
    let m0 = mean(&img);
    let series = |d: Distortion, f: &dyn Fn(&RgbImage) -> f64| -> Vec<f64> {
        (1..=5).map(|l| f(&apply(d, &img, l, 0).unwrap())).collect()
    };
    let inc = |v: &[f64]| v.windows(2).all(|w| w[1] > w[0]);
    let dec = |v: &[f64]| v.windows(2).all(|w| w[1] < w[0]);

    let b = series(Distortion::Brighten, &mean);
    assert!(inc(&b) && b[0] > m0, "brighten means {b:?} (ref {m0})");
    let d = series(Distortion::Darken, &mean);
    assert!(dec(&d) && d[0] < m0, "darken means {d:?} (ref {m0})");
    // KADID's mean-shift table runs from +0.15 (level 1) through 0 (level 3) to -0.15.
    let s = series(Distortion::MeanShift, &mean);
    assert!(
        dec(&s) && s[0] > m0 && s[4] < m0 && (s[2] - m0).abs() < 1e-9,
        "mean shift {s:?} (ref {m0})"
    );
    // contrast: +0.3 (more contrast) ... -0.6 (much less)
    let c = series(Distortion::ContrastChange, &std);
    assert!(
        dec(&c) && c[0] > std(&img) && c[4] < std(&img),
        "contrast std {c:?} (ref {})",
        std(&img)
    );
    // sharpening raises local contrast: high-pass energy grows with the level
    let hp = |a: &RgbImage| {
        let g = image::imageops::grayscale(a);
        let mut e = 0.0;
        for y in 1..g.height() - 1 {
            for x in 1..g.width() - 1 {
                let c = g.get_pixel(x, y).0[0] as f64;
                let n = [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)]
                    .map(|(i, j)| g.get_pixel(i, j).0[0] as f64)
                    .iter()
                    .sum::<f64>();
                e += (4.0 * c - n).powi(2);
            }
        }
        e
    };
    let h = series(Distortion::HighSharpen, &hp);
    assert!(inc(&h) && h[0] > hp(&img), "sharpen energy {h:?}");
    // HSV saturation factor 0.4 .. 0: chroma (max-min) falls to zero at level 4
    let chroma = |a: &RgbImage| {
        a.pixels()
            .map(|p| (*p.0.iter().max().unwrap() - *p.0.iter().min().unwrap()) as f64)
            .sum::<f64>()
    };
    let ch = series(Distortion::ColorSaturationHsv, &chroma);
    assert!(dec(&ch[..4]) && ch[3] == 0.0, "hsv chroma {ch:?}");
}

#[test]
fn embedded_references_are_six_distinct_128px_images() {
    let refs = embedded_references();
    assert_eq!(refs.len(), 6);
    for (i, (name, img)) in refs.iter().enumerate() {
        assert!(name.starts_with("kodim"));
        assert_eq!(img.dimensions(), (128, 128));
        assert!(std(img) > 20.0, "{name} looks flat");
        for (_, other) in &refs[i + 1..] {
            assert!(img.as_raw() != other.as_raw());
        }
    }
}

#[test]
fn generate_writes_images_labels_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let refs_dir = dir.path().join("src");
    let mut refs = write_embedded_references(&refs_dir).unwrap();
    refs.truncate(2);
    let out = dir.path().join("out");
    let opts = GenerateOptions {
        distortions: vec![
            Distortion::GaussianBlur,
            Distortion::Jpeg,
            Distortion::ImpulseNoise,
        ],
        levels: vec![1, 3, 5],
        seed: 5,
        ..Default::default()
    };
    let recs = generate(&refs, &out, &opts, &psnr).unwrap();
    assert_eq!(recs.len(), 2 * 3 * 3);
    assert_eq!(recs[0].image, "images/kodim03_01_1.png");
    assert_eq!(recs[0].reference, "references/kodim03.png");
    assert_eq!(recs[17].image, "images/kodim05_13_5.png");
    for r in &recs {
        let img = image::open(out.join(&r.image)).unwrap().to_rgb8();
        let reference = image::open(out.join(&r.reference)).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (128, 128));
        let p = psnr(&reference, &img);
        assert!(
            p == r.score || (p - r.score).abs() < 1e-9,
            "{} {p} {}",
            r.image,
            r.score
        );
    }
    let csv = std::fs::read_to_string(out.join("labels.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "image,reference,distortion,level,score");
    assert_eq!(lines.len(), 19);
    assert!(lines[1].starts_with("images/kodim03_01_1.png,references/kodim03.png,gaussian_blur,1,"));

    // Resume: existing images are kept untouched, a deleted one is regenerated identically.
    let victim = out.join("images/kodim05_10_3.png");
    let before = std::fs::read(&victim).unwrap();
    let kept = out.join("images/kodim03_13_5.png");
    let mtime = std::fs::metadata(&kept).unwrap().modified().unwrap();
    std::fs::remove_file(&victim).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = generate(&refs, &out, &opts, &psnr).unwrap();
    assert_eq!(again, recs);
    assert_eq!(std::fs::read(&victim).unwrap(), before);
    assert_eq!(std::fs::metadata(&kept).unwrap().modified().unwrap(), mtime);

    // bad level
    let bad = GenerateOptions {
        levels: vec![6],
        ..opts.clone()
    };
    assert!(generate(&refs, &out, &bad, &psnr).is_err());
}
