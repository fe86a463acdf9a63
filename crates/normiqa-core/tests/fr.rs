//! Full-reference metrics against independent implementations
//! (tests/data/fr/expected.json, written by reference/fr_expected.py) and
//! property checks.

use std::path::PathBuf;

use image::{Rgb, RgbImage};
use normiqa_core::fr::{
    box_downsample2_zero, box_downsample_symmetric, gmsd, gmsd_plane, ms_ssim, ms_ssim_plane, psnr,
    psnr_plane, psnr_y, rgb2gray, ssim, ssim_plane, ssim_with, FrError, FrMetric, Plane,
    SsimDownsample, SsimMode, SsimOptions, MS_SSIM_MIN_SIDE,
};
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/fr")
}

/// Mirror of `synth_rgb` in reference/fr_expected.py (integer arithmetic only).
fn synth(w: u32, h: u32, seed: u32) -> (RgbImage, RgbImage) {
    let mut r = RgbImage::new(w, h);
    let mut d = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let mut pr = [0u8; 3];
            let mut pd = [0u8; 3];
            for c in 0..3u32 {
                let t = (3 * x + 2 * y + 40 * c) % 512;
                let tri = (if t < 256 { t } else { 511 - t }) as i64;
                let v = (tri + (((x as u64 * y as u64 + 11 * c as u64) % 7) as i64) * 4 - 12)
                    .clamp(0, 255);
                let mut hs = x
                    .wrapping_mul(2654435761)
                    .wrapping_add(y.wrapping_mul(40503))
                    .wrapping_add(c * 97)
                    .wrapping_add(seed);
                hs ^= hs >> 13;
                hs = hs.wrapping_mul(0x5BD1E995);
                hs ^= hs >> 15;
                let nz = (hs % 41) as i64 - 20;
                pr[c as usize] = v as u8;
                pd[c as usize] = (v + nz).clamp(0, 255) as u8;
            }
            r.put_pixel(x, y, Rgb(pr));
            d.put_pixel(x, y, Rgb(pd));
        }
    }
    (r, d)
}

fn load(name: &str) -> RgbImage {
    if let Some(spec) = name.strip_prefix("synthetic:") {
        // synthetic:{ref|dist}:{W}x{H}:{seed}
        let parts: Vec<&str> = spec.split(':').collect();
        let (w, h) = parts[1].split_once('x').unwrap();
        let (r, d) = synth(
            w.parse().unwrap(),
            h.parse().unwrap(),
            parts[2].parse().unwrap(),
        );
        return if parts[0] == "ref" { r } else { d };
    }
    image::open(data_dir().join(name)).unwrap().to_rgb8()
}

fn expected() -> Value {
    let s = std::fs::read_to_string(data_dir().join("expected.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

fn check_abs(what: &str, case: &str, got: f64, want: f64, tol: f64) -> f64 {
    let err = (got - want).abs();
    assert!(
        err <= tol,
        "{case} {what}: got {got}, expected {want} (|diff| {err:e} > {tol:e})"
    );
    err
}

fn check_rel(what: &str, case: &str, got: f64, want: f64, tol: f64) -> f64 {
    let err = (got - want).abs() / want.abs();
    assert!(
        err <= tol,
        "{case} {what}: got {got}, expected {want} (rel diff {err:e} > {tol:e})"
    );
    err
}

#[test]
fn matches_independent_implementations() {
    let exp = expected();
    let cases = exp["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    let mut worst = [0.0f64; 7];
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let r = load(c["reference"].as_str().unwrap());
        let d = load(c["distorted"].as_str().unwrap());
        assert_eq!(r.width() as u64, c["width"].as_u64().unwrap());
        assert_eq!(r.height() as u64, c["height"].as_u64().unwrap());
        let f = |k: &str| c[k].as_f64().unwrap();

        let e = [
            check_abs("psnr", name, psnr(&r, &d).unwrap(), f("psnr"), 1e-6),
            check_abs("psnr_y", name, psnr_y(&r, &d).unwrap(), f("psnr_y"), 1e-6),
            check_abs(
                "ssim(no downsampling) vs skimage",
                name,
                ssim_with(&r, &d, &SsimOptions::no_downsampling()).unwrap(),
                f("ssim_skimage_nodown"),
                1e-6,
            ),
            check_abs(
                "ssim(no downsampling) vs ssim.m",
                name,
                ssim_with(&r, &d, &SsimOptions::no_downsampling()).unwrap(),
                f("ssim_authors_nodown"),
                1e-6,
            ),
            check_abs(
                "ssim (auto downsampling)",
                name,
                ssim_with(&r, &d, &SsimOptions::matlab()).unwrap(),
                f("ssim_authors"),
                1e-6,
            ),
            check_rel(
                "ms_ssim",
                name,
                ms_ssim(&r, &d).unwrap(),
                f("ms_ssim_authors"),
                1e-5,
            ),
            check_rel("gmsd", name, gmsd(&r, &d).unwrap(), f("gmsd_authors"), 1e-5),
        ];
        for (w, e) in worst.iter_mut().zip(e) {
            *w = w.max(e);
        }
        let factor = SsimOptions::matlab().factor(r.width() as usize, r.height() as usize);
        assert_eq!(
            factor as u64,
            c["ssim_downsample_factor"].as_u64().unwrap(),
            "{name}"
        );
    }
    // Visible with --nocapture: how close we actually are.
    println!(
        "max |diff|: psnr {:e}, psnr_y {:e}, ssim-vs-skimage {:e}, ssim-vs-ssim.m(nodown) {:e}, ssim(auto) {:e}; \
         max rel diff: ms-ssim {:e}, gmsd {:e}",
        worst[0], worst[1], worst[2], worst[3], worst[4], worst[5], worst[6]
    );
    // The expected file covers every downsampling factor we care about.
    let factors: Vec<u64> = cases
        .iter()
        .map(|c| c["ssim_downsample_factor"].as_u64().unwrap())
        .collect();
    for f in [1, 2, 3] {
        assert!(
            factors.contains(&f),
            "no case with SSIM downsampling factor {f}"
        );
    }
}

#[test]
fn identical_images() {
    for r in [
        load("rgb_ref.png"),
        load("gray_ref.png"),
        synth(700, 650, 1).0,
    ] {
        assert_eq!(psnr(&r, &r).unwrap(), f64::INFINITY);
        assert_eq!(psnr_y(&r, &r).unwrap(), f64::INFINITY);
        assert_eq!(ssim(&r, &r).unwrap(), 1.0);
        assert_eq!(
            ssim_with(&r, &r, &SsimOptions::no_downsampling()).unwrap(),
            1.0
        );
        assert_eq!(ms_ssim(&r, &r).unwrap(), 1.0);
        assert_eq!(gmsd(&r, &r).unwrap(), 0.0);
    }
}

/// Box–Muller Gaussian noise from a seeded ChaCha stream, rounded and clipped.
fn add_noise(img: &RgbImage, sigma: f64, seed: u64) -> RgbImage {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = img.clone();
    for v in out.iter_mut() {
        let u1: f64 = 1.0 - rng.gen::<f64>();
        let u2: f64 = rng.gen::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        *v = (*v as f64 + sigma * z).round().clamp(0.0, 255.0) as u8;
    }
    out
}

#[test]
fn monotone_in_noise_level() {
    let r = load("rgb_ref.png");
    let sigmas = [2.0, 5.0, 10.0, 20.0, 40.0];
    let mut prev: Option<[f64; 5]> = None;
    for (i, &s) in sigmas.iter().enumerate() {
        let d = add_noise(&r, s, 100 + i as u64);
        let cur = [
            psnr(&r, &d).unwrap(),
            psnr_y(&r, &d).unwrap(),
            ssim(&r, &d).unwrap(),
            ms_ssim(&r, &d).unwrap(),
            gmsd(&r, &d).unwrap(),
        ];
        if let Some(p) = prev {
            for (k, name) in ["psnr", "psnr_y", "ssim", "ms-ssim"].iter().enumerate() {
                assert!(
                    cur[k] < p[k],
                    "{name} not decreasing at sigma {s}: {} -> {}",
                    p[k],
                    cur[k]
                );
            }
            assert!(
                cur[4] > p[4],
                "gmsd not increasing at sigma {s}: {} -> {}",
                p[4],
                cur[4]
            );
        }
        assert!(cur[2] < 1.0 && cur[3] < 1.0 && cur[4] > 0.0);
        prev = Some(cur);
    }
}

#[test]
fn deterministic_across_thread_counts() {
    let (r, d) = synth(700, 650, 3);
    let run = || FrMetric::ALL.map(|m| m.compute(&r, &d).unwrap().to_bits());
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(run);
    let many = rayon::ThreadPoolBuilder::new()
        .num_threads(5)
        .build()
        .unwrap()
        .install(run);
    assert_eq!(one, many);
}

#[test]
fn errors() {
    let a = RgbImage::new(201, 187);
    let b = RgbImage::new(200, 187);
    for m in FrMetric::ALL {
        let e = m.compute(&a, &b).unwrap_err();
        assert_eq!(
            e,
            FrError::SizeMismatch {
                reference: (201, 187),
                distorted: (200, 187)
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("201x187") && msg.contains("200x187"), "{msg}");
    }
    assert!(psnr_y(&a, &b).is_err());
    assert!(ssim_with(&a, &b, &SsimOptions::no_downsampling()).is_err());

    // MS-SSIM: 176 px is the authors' minimum (min side / 16 >= 11).
    assert_eq!(MS_SSIM_MIN_SIDE, 176);
    let small = RgbImage::new(175, 300);
    match ms_ssim(&small, &small) {
        Err(FrError::TooSmall {
            metric: "MS-SSIM",
            width: 175,
            height: 300,
            min_side: 176,
        }) => {}
        other => panic!("{other:?}"),
    }
    let ok = RgbImage::from_fn(176, 181, |x, y| {
        Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 9])
    });
    assert_eq!(ms_ssim(&ok, &ok).unwrap(), 1.0);
    let odd = add_noise(&ok, 10.0, 5);
    assert!(ms_ssim(&ok, &odd).unwrap() < 1.0);

    // SSIM: 11x11 window after downsampling.
    let t = RgbImage::new(10, 40);
    assert!(matches!(
        ssim(&t, &t),
        Err(FrError::TooSmall { min_side: 11, .. })
    ));
    let t = RgbImage::new(20, 20);
    let opt = SsimOptions {
        downsample: SsimDownsample::Factor(2),
        ..SsimOptions::matlab()
    };
    assert!(matches!(
        ssim_with(&t, &t, &opt),
        Err(FrError::TooSmall { min_side: 21, .. })
    ));
    let t = RgbImage::new(21, 21);
    assert_eq!(ssim_with(&t, &t, &opt).unwrap(), 1.0);
    assert_eq!(
        ssim(&RgbImage::new(11, 11), &RgbImage::new(11, 11)).unwrap(),
        1.0
    );

    // GMSD needs >= 3 px per side, PSNR >= 1.
    let t = RgbImage::new(2, 9);
    assert!(matches!(
        gmsd(&t, &t),
        Err(FrError::TooSmall { metric: "GMSD", .. })
    ));
    assert!(psnr(&RgbImage::new(0, 0), &RgbImage::new(0, 0)).is_err());
    assert!(matches!(
        Plane::new(3, 2, vec![0.0; 5]),
        Err(FrError::PlaneLength { .. })
    ));
}

#[test]
fn metric_selector() {
    for m in FrMetric::ALL {
        assert_eq!(m.to_string().parse::<FrMetric>().unwrap(), m);
    }
    assert_eq!("ms-ssim".parse::<FrMetric>().unwrap(), FrMetric::MsSsim);
    assert_eq!(" MS_SSIM ".parse::<FrMetric>().unwrap(), FrMetric::MsSsim);
    assert_eq!("GMSD".parse::<FrMetric>().unwrap(), FrMetric::Gmsd);
    assert!(matches!(
        "vif".parse::<FrMetric>(),
        Err(FrError::UnknownMetric(_))
    ));
    assert_eq!(
        FrMetric::ALL.map(|m| m.to_string()),
        ["psnr", "ssim", "ms-ssim", "gmsd"].map(String::from)
    );
    assert_eq!(
        FrMetric::ALL.map(|m| m.higher_is_better()),
        [true, true, true, false]
    );

    let r = load("rgb_ref.png");
    let d = load("rgb_jpeg20.png");
    assert_eq!(
        FrMetric::Psnr.compute(&r, &d).unwrap(),
        psnr(&r, &d).unwrap()
    );
    assert_eq!(
        FrMetric::Ssim.compute(&r, &d).unwrap(),
        ssim(&r, &d).unwrap()
    );
    assert_eq!(
        FrMetric::MsSsim.compute(&r, &d).unwrap(),
        ms_ssim(&r, &d).unwrap()
    );
    assert_eq!(
        FrMetric::Gmsd.compute(&r, &d).unwrap(),
        gmsd(&r, &d).unwrap()
    );
    // Plane entry points agree with the RGB ones on the same luma.
    let (pr, pd) = (rgb2gray(&r), rgb2gray(&d));
    assert_eq!(
        FrMetric::Psnr.compute_plane(&pr, &pd).unwrap(),
        psnr_y(&r, &d).unwrap()
    );
    assert_eq!(
        psnr_plane(&pr, &pd, 255.0).unwrap(),
        psnr_y(&r, &d).unwrap()
    );
    assert_eq!(
        ssim_plane(&pr, &pd, &SsimOptions::matlab()).unwrap(),
        ssim_with(&r, &d, &SsimOptions::matlab()).unwrap()
    );
    assert_eq!(ms_ssim_plane(&pr, &pd).unwrap(), ms_ssim(&r, &d).unwrap());
    assert_eq!(gmsd_plane(&pr, &pd).unwrap(), gmsd(&r, &d).unwrap());
}

#[test]
fn luma_is_matlab_rgb2gray() {
    let img = RgbImage::from_fn(4, 1, |x, _| {
        [
            Rgb([255, 0, 0]),
            Rgb([0, 255, 0]),
            Rgb([0, 0, 255]),
            Rgb([10, 200, 30]),
        ][x as usize]
    });
    // MATLAB: rgb2gray(uint8(...)) = 76, 150, 29, 124
    assert_eq!(rgb2gray(&img).data, vec![76.0, 150.0, 29.0, 124.0]);
    let grey = RgbImage::from_fn(256, 1, |x, _| Rgb([x as u8; 3]));
    assert_eq!(
        rgb2gray(&grey).data,
        (0..256).map(|v| v as f64).collect::<Vec<_>>()
    );
}

#[test]
fn downsampling_helpers_follow_matlab() {
    // 3x3 plane 1..9 (row-major).
    let p = Plane::new(3, 3, (1..=9).map(|v| v as f64).collect()).unwrap();
    // imfilter(.., ones(2)/4, 'symmetric', 'same')(1:2:end, 1:2:end): blocks start at the kept
    // sample; the last row/col mirrors itself.
    let d = box_downsample_symmetric(&p, 2);
    assert_eq!((d.width, d.height), (2, 2));
    assert_eq!(
        d.data,
        vec![
            (1. + 2. + 4. + 5.) / 4.,
            (3. + 3. + 6. + 6.) / 4.,
            (7. + 8. + 7. + 8.) / 4.,
            9.
        ]
    );
    // conv2(.., ones(2)/4, 'same')(1:2:end, 1:2:end): zero padding.
    let z = box_downsample2_zero(&p);
    assert_eq!(z.data, vec![3.0, (3. + 6.) / 4., (7. + 8.) / 4., 9. / 4.]);
    // f = 3 centres the block on the kept sample: sample 0 averages rows/cols {0 (mirror), 0, 1}.
    let d3 = box_downsample_symmetric(&p, 3);
    assert_eq!((d3.width, d3.height), (1, 1));
    assert!((d3.data[0] - (1. + 1. + 2. + 1. + 1. + 2. + 4. + 4. + 5.) / 9.).abs() < 1e-12);
}

/// The default SSIM is pyiqa's `ssim` (reference/ssim_pyiqa_expected.py), on the fixtures above
/// and on `normiqa synth` distortions; `SsimMode::Matlab` keeps `ssim.m` (its downsampling moves
/// the 400x390 noisy pair by more than 0.05).
#[test]
fn ssim_default_matches_pyiqa() {
    let s = std::fs::read_to_string(data_dir().join("ssim_pyiqa.json")).unwrap();
    let exp: Value = serde_json::from_str(&s).unwrap();
    let mut worst = 0.0f64;
    for c in exp["cases"].as_array().unwrap() {
        let r = load(c["reference"].as_str().unwrap());
        let d = load(c["distorted"].as_str().unwrap());
        let want = c["ssim_pyiqa"].as_f64().unwrap();
        let got = ssim(&r, &d).unwrap();
        let pyiqa = SsimMode::Pyiqa.options();
        assert_eq!(got, ssim_with(&r, &d, &pyiqa).unwrap());
        assert!((got - want).abs() < 1e-6, "{}: {got} vs pyiqa {want}", c["distorted"]);
        worst = worst.max((got - want).abs());
    }
    eprintln!("max |normiqa - pyiqa| = {worst:e}");
    let (r, d) = (load("gray_ref.png"), load("gray_noise15.png"));
    let matlab = ssim_with(&r, &d, &SsimMode::Matlab.options()).unwrap();
    assert!(matlab - ssim(&r, &d).unwrap() > 0.05, "{matlab}");
    assert_eq!("matlab".parse::<SsimMode>().unwrap(), SsimMode::Matlab);
    assert!("ssim.x".parse::<SsimMode>().is_err());
}
