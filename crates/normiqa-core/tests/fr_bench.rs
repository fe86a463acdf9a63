//! Timing of the full-reference metrics on a 500x500 pair (ignored by default):
//! `cargo test -p normiqa-core --release --test fr_bench -- --ignored --nocapture`
//! Uses $KODAK_DIR/kodim01.png (default ../shared/data/kodak24 next to the checkout); skips if absent.

use std::time::Instant;

use image::RgbImage;
use normiqa_core::fr::FrMetric;

fn noisy(img: &RgbImage) -> RgbImage {
    let mut out = img.clone();
    let mut s: u32 = 12345;
    for v in out.iter_mut() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        *v = (*v as i32 + (s % 31) as i32 - 15).clamp(0, 255) as u8;
    }
    out
}

fn time_all(r: &RgbImage, d: &RgbImage, reps: usize) -> Vec<(FrMetric, f64, f64, f64)> {
    FrMetric::ALL
        .iter()
        .map(|&m| {
            let v = m.compute(r, d).unwrap(); // warm-up
            let mut t: Vec<f64> = (0..reps)
                .map(|_| {
                    let t0 = Instant::now();
                    std::hint::black_box(m.compute(r, d).unwrap());
                    t0.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (m, t[0], t[reps / 2], v)
        })
        .collect()
}

#[test]
#[ignore]
fn fr_timing_500x500() {
    let dir = std::env::var("KODAK_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/kodak24").into()
    });
    let path = std::path::Path::new(&dir).join("kodim01.png");
    let Ok(img) = image::open(&path) else {
        eprintln!("skipping: {} not found", path.display());
        return;
    };
    let r = img.to_rgb8();
    let d = noisy(&r);
    println!(
        "{}x{} pair, min / median of 41 runs (wall clock)",
        r.width(),
        r.height()
    );
    for threads in [1, rayon::current_num_threads()] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for (m, min, med, v) in pool.install(|| time_all(&r, &d, 41)) {
            println!("  threads={threads} {m:>8}: {min:8.3} / {med:8.3} ms  (value {v:.6})");
        }
    }
}
