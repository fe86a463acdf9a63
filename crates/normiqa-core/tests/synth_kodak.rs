//! Timing run of the full KADID-style generation on the 24 Kodak images (3,000 images).
//! Ignored by default (needs `shared/data/kodak24`); run with
//! `cargo test -p normiqa-core --release --test synth_kodak -- --ignored --nocapture`.

use image::RgbImage;
use normiqa_core::synth::{generate, GenerateOptions};
use std::path::PathBuf;

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

#[test]
#[ignore]
fn generate_kodak24_full() {
    let src = std::env::var("KODAK_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/kodak24").into()
    });
    let mut refs: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map_or(false, |e| e == "png"))
        .collect();
    refs.sort();
    assert_eq!(refs.len(), 24);
    let out = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let recs = generate(&refs, out.path(), &GenerateOptions::default(), &psnr).unwrap();
    let first = t.elapsed();
    assert_eq!(recs.len(), 3000);
    let t = std::time::Instant::now();
    generate(&refs, out.path(), &GenerateOptions::default(), &psnr).unwrap();
    let resumed = t.elapsed();
    println!(
        "kodak24: {} images in {:.1} s ({} rayon threads); resumed (all present) in {:.1} s",
        recs.len(),
        first.as_secs_f64(),
        rayon::current_num_threads(),
        resumed.as_secs_f64()
    );
    // per-type time on one reference, to see where the time goes
    let img = image::open(&refs[0]).unwrap().to_rgb8();
    for d in normiqa_core::synth::Distortion::ALL {
        let t = std::time::Instant::now();
        for l in 1..=5 {
            normiqa_core::synth::apply(d, &img, l, 0).unwrap();
        }
        println!(
            "{d:>28}: {:7.1} ms / 5 levels",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}
