//! Deterministic fuzzing of every reader of untrusted files: the image decoder, the labels-CSV
//! loaders, the `.pth`/pickle reader and the MATLAB reader, each on a few dozen seeded mutations
//! (bit flips, truncations, inserted bytes, changed header fields, repeated chunks) of real small
//! files. Errors are the expected outcome; a panic, an abort or a case that does not finish
//! within a generous bound fails the test, naming the file, the mutation and its seed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use normiqa_core::data::decode::{decode_one, DecodeOptions, Resize};
use normiqa_core::data::{csv, koniq, mat, LoadOptions};
use normiqa_core::weights::{read_pth_bytes, ReadOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Far above what any case takes (milliseconds); only a hang reaches it.
const CASE_LIMIT: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn fixture(rel: &str) -> PathBuf {
    root().join("tests/data").join(rel)
}

/// One mutation of `src`, described for failure messages.
fn mutate(src: &[u8], rng: &mut ChaCha8Rng) -> (Vec<u8>, String) {
    let mut b = src.to_vec();
    let len = b.len().max(1);
    let what = match rng.gen_range(0..5) {
        0 => {
            let n = rng.gen_range(1..=8);
            for _ in 0..n {
                let i = rng.gen_range(0..len).min(b.len().saturating_sub(1));
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << rng.gen_range(0..8);
                }
            }
            format!("{n} bit flips")
        }
        1 => {
            let at = rng.gen_range(0..len);
            b.truncate(at);
            format!("cut at {at}")
        }
        2 => {
            let at = rng.gen_range(0..=b.len());
            let n = rng.gen_range(1..64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            b.splice(at..at, bytes);
            format!("{n} bytes inserted at {at}")
        }
        3 => {
            // a header field: a few bytes near the start set to extremes or random values
            let at = rng.gen_range(0..len.min(64));
            let n = rng.gen_range(1..=4);
            let v: u8 = match rng.gen_range(0..3) {
                0 => 0x00,
                1 => 0xff,
                _ => rng.gen(),
            };
            for x in b.iter_mut().skip(at).take(n) {
                *x = v;
            }
            format!("{n} header bytes at {at} set to {v:#04x}")
        }
        _ => {
            let start = rng.gen_range(0..len);
            let end = (start + rng.gen_range(1..256)).min(b.len());
            let chunk = b[start.min(end)..end].to_vec();
            let at = rng.gen_range(0..=b.len());
            b.splice(at..at, chunk);
            format!("bytes {start}..{end} repeated at {at}")
        }
    };
    (b, what)
}

/// Runs `case` on `n` mutations of `file`; returns the failures (panics, hangs).
fn fuzz(
    file: &Path,
    n: usize,
    seed: u64,
    case: impl Fn(&[u8], u64) + Send + Sync + Clone + 'static,
) -> Vec<String> {
    let src = std::fs::read(file).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut failures = Vec::new();
    for k in 0..n {
        let (bytes, what) = mutate(&src, &mut rng);
        let (tx, rx) = mpsc::channel();
        let case = case.clone();
        let salt = seed.wrapping_mul(1000).wrapping_add(k as u64);
        std::thread::spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| case(&bytes, salt)));
            let _ = tx.send(r.is_ok());
        });
        let name = format!("{} (seed {seed}, case {k}: {what})", file.display());
        match rx.recv_timeout(CASE_LIMIT) {
            Ok(true) => {}
            Ok(false) => failures.push(format!("panic: {name}")),
            Err(_) => failures.push(format!("no result within {CASE_LIMIT:?}: {name}")),
        }
    }
    failures
}

/// Writes `bytes` to a fresh temporary folder as `name`; returns the folder (kept alive).
fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

fn image_case(name: &'static str) -> impl Fn(&[u8], u64) + Send + Sync + Clone + 'static {
    move |bytes, salt| {
        let (_dir, p) = temp_file(name, bytes);
        let opts = DecodeOptions {
            allow_truncated: salt % 2 == 1,
            // small, so a mutated header cannot make a case allocate much
            max_image_pixels: 1 << 22,
        };
        let _ = decode_one(&p, &[Resize::Exact { h: 32, w: 48 }], &opts);
    }
}

#[test]
fn fuzz_readers_never_panic_abort_or_hang() {
    let mut failures = Vec::new();
    let images = [
        ("datasets/clive_official/Images/1000.JPG", "a.jpg", 80),
        ("datasets/clive_official/Images/1001.JPG", "b.jpg", 80),
        ("datasets/clive_official/Images/102.png", "c.png", 50),
        ("datasets/clive_official/Images/101.webp", "d.webp", 50),
        ("datasets/clive_official/Images/100.bmp", "e.bmp", 40),
    ];
    for (seed, (rel, name, n)) in images.into_iter().enumerate() {
        failures.extend(fuzz(&fixture(rel), n, seed as u64, image_case(name)));
    }
    // one full-size photo
    let photo = root().join("../../assets/clive-sample/images/1001.JPG");
    failures.extend(fuzz(&photo, 30, 10, image_case("photo.jpg")));

    let csv_case = |bytes: &[u8], salt: u64| {
        let (dir, p) = temp_file("labels.csv", bytes);
        let opts = LoadOptions {
            allow_outside_root: salt % 2 == 0,
            drop_duplicates: salt % 3 == 0,
        };
        let _ = csv::load(&p, dir.path(), &csv::CsvColumns::default(), &opts);
        let _ = koniq::load_with_split(&p, dir.path(), &opts);
    };
    for (seed, rel) in [
        "datasets/clive_normiqa/mos.csv",
        "datasets/koniq10k/koniq10k_distributions_sets.csv",
    ]
    .into_iter()
    .enumerate()
    {
        failures.extend(fuzz(&fixture(rel), 60, 20 + seed as u64, csv_case));
    }

    let pth_case = |bytes: &[u8], _salt: u64| {
        let _ = read_pth_bytes(bytes, Path::new("fuzz.pth"), &ReadOptions::default());
    };
    for (seed, rel) in [
        "pth/tiny_zip.pth",
        "pth/tiny_legacy.pth",
        "pth/checkpoint_zip.pth",
    ]
    .into_iter()
    .enumerate()
    {
        failures.extend(fuzz(&fixture(rel), 80, 30 + seed as u64, pth_case));
    }

    let mat_case = |bytes: &[u8], _salt: u64| {
        let _ = mat::parse(bytes);
    };
    for (seed, rel) in [
        "datasets/clive_official/Data/AllImages_release.mat",
        "datasets/clive_official/Data/AllMOS_release.mat",
    ]
    .into_iter()
    .enumerate()
    {
        failures.extend(fuzz(&fixture(rel), 60, 40 + seed as u64, mat_case));
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
