//! Real-data checks on the shared CLIVE copy (`$NORMIQA_SHARED_DATA` or `<repo>/../shared/data`).
//! Skipped, with a note on stderr, when it is not there.
use normiqa_core::data::{clive, LoadOptions, Ratios};
use std::collections::HashMap;
use std::path::PathBuf;

fn shared_clive() -> Option<PathBuf> {
    let base = std::env::var_os("NORMIQA_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let p = base.join("clive");
    if p.join("mos.csv").is_file() {
        Some(p)
    } else {
        eprintln!("skipped: no shared CLIVE data at {}", p.display());
        None
    }
}

#[test]
fn shared_clive_csv_layout() {
    let Some(root) = shared_clive() else { return };
    assert_eq!(clive::detect_layout(&root).unwrap(), clive::Layout::Normiqa);
    let ds = clive::load(&root, &LoadOptions::default()).unwrap();
    assert_eq!(ds.len(), 1162);
    let s = ds.samples.iter().find(|s| s.name == "100.webp").unwrap();
    assert_eq!(s.mos, 32.561075);
    assert!(ds.samples.iter().all(|s| s.path.is_file()));
    let (lo, hi) = ds
        .mos()
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &m| (a.min(m), b.max(m)));
    assert!(lo > 3.0 && hi < 93.0, "{lo} {hi}");
}

#[test]
fn shared_clive_official_mats_agree_with_csv() {
    let Some(root) = shared_clive() else { return };
    let csv = clive::load_layout(&root, clive::Layout::Normiqa, &LoadOptions::default()).unwrap();
    let off = clive::load_layout(&root, clive::Layout::Official, &LoadOptions::default()).unwrap();
    assert_eq!(off.len(), 1162, "7 training images skipped");
    assert!(off.samples.iter().all(|s| !s.name.starts_with('t')));
    assert!(off.samples.iter().any(|s| s.name == "100.bmp"));
    assert!(
        off.samples.iter().all(|s| s.path.is_file()),
        "bmp -> webp fallback"
    );
    let by_stem: HashMap<&str, _> = csv
        .samples
        .iter()
        .map(|s| (clive::stem(&s.name), s))
        .collect();
    for s in &off.samples {
        let c = by_stem[clive::stem(&s.name)];
        assert!(
            (s.mos - c.mos).abs() <= 5e-7,
            "{} {} {}",
            s.name,
            s.mos,
            c.mos
        );
        assert!(
            (s.mos_std.unwrap() - c.mos_std.unwrap()).abs() <= 5e-7,
            "{}",
            s.name
        );
        assert_eq!(s.path, c.path, "{}", s.name);
    }
}

#[test]
fn shared_clive_reference_splits() {
    let Some(root) = shared_clive() else { return };
    let csv = clive::load_layout(&root, clive::Layout::Normiqa, &LoadOptions::default()).unwrap();
    let off = clive::load_layout(&root, clive::Layout::Official, &LoadOptions::default()).unwrap();
    for exp_id in 0..10 {
        let s = clive::split(&root, &csv, exp_id, Ratios::default()).unwrap();
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (697, 232, 233));
        // the same images in either layout
        let t = clive::split(&root, &off, exp_id, Ratios::default()).unwrap();
        let stems = |ds: &normiqa_core::data::Dataset, v: &[usize]| {
            let mut x: Vec<String> = v
                .iter()
                .map(|&i| clive::stem(&ds.samples[i].name).to_string())
                .collect();
            x.sort();
            x
        };
        assert_eq!(stems(&csv, &s.test), stems(&off, &t.test));
        assert_eq!(stems(&csv, &s.val), stems(&off, &t.val));
    }
    let s = clive::split(&root, &csv, 0, Ratios::train_test(0.8)).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (929, 0, 233));
    let e = clive::split(&root, &csv, 10, Ratios::default()).unwrap_err();
    assert!(
        e.to_string().contains("order_10") && e.to_string().contains("splits.csv"),
        "{e}"
    );
}
