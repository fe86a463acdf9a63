//! Loaders on the tiny fixtures in tests/data/datasets (official layouts), and bad inputs.
use normiqa_core::data::{clive, csv, kadid, koniq, tid2013, DataError, LoadOptions, Ratios};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/datasets")
        .join(name)
}

#[test]
fn clive_official_layout() {
    let root = fixture("clive_official");
    assert_eq!(
        clive::detect_layout(&root).unwrap(),
        clive::Layout::Official
    );
    let ds = clive::load(&root, &LoadOptions::default()).unwrap();
    assert_eq!(ds.name, "CLIVE");
    let names: Vec<_> = ds.samples.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["100.bmp", "101.bmp", "1000.JPG", "1001.JPG", "102.bmp"],
        "t1..t7 skipped"
    );
    assert_eq!(ds.samples[0].mos, 32.561075);
    assert_eq!(ds.samples[1].mos_std, Some(20.219786));
    // listed .bmp absent: the .webp / .png re-encoding is used
    assert!(ds.samples[0].path.ends_with("Images/100.bmp"));
    assert!(ds.samples[1].path.ends_with("Images/101.webp"));
    assert!(ds.samples[4].path.ends_with("Images/102.png"));
    assert!(ds.samples.iter().all(|s| s.path.is_file()));
    // splits.csv lists normiqa names (100.webp): matched by stem
    let s = clive::split(&root, &ds, 0, Ratios::default()).unwrap();
    // order_0: 102 (idx 4) < 1001 (3) < 1000 (2) < 101 (1) < 100 (0); cuts (3, 4)
    assert_eq!((s.train, s.val, s.test), (vec![2, 3, 4], vec![1], vec![0]));
}

#[test]
fn clive_normiqa_layout_and_split() {
    let root = fixture("clive_normiqa");
    assert_eq!(clive::detect_layout(&root).unwrap(), clive::Layout::Normiqa);
    let ds = clive::load(&root, &LoadOptions::default()).unwrap();
    assert_eq!(ds.len(), 10);
    assert_eq!(ds.samples[0].name, "200.webp");
    assert_eq!(ds.samples[3].mos, 32.5);
    assert_eq!(ds.samples[3].mos_std, Some(8.0));
    // order_0 = [3,7,0,9,1,5,8,2,6,4] -> sorted: 2,4,7,0,9,5,8,1,6,3 ; cuts (6, 8)
    let s = clive::split(&root, &ds, 0, Ratios::default()).unwrap();
    assert_eq!(s.train, vec![0, 2, 4, 5, 7, 9]);
    assert_eq!(s.val, vec![1, 8]);
    assert_eq!(s.test, vec![3, 6]);
    let s = clive::split(&root, &ds, 1, Ratios::train_test(0.8)).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (8, 0, 2));
    assert_eq!(s.test, vec![0, 1]); // order_1 = 9 - i: images 1, 0 come last
}

#[test]
fn clive_split_errors() {
    let root = fixture("clive_normiqa");
    let ds = clive::load(&root, &LoadOptions::default()).unwrap();
    let e = clive::split(&root, &ds, 5, Ratios::default()).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, DataError::Inconsistent { .. })
            && msg.contains("order_5")
            && msg.contains("reference/clive_splits.py")
            && msg.contains("--splits"),
        "{e}"
    );
    assert!(e.to_string().contains("splits.csv"), "{e}");
    let e = clive::split(fixture("kadid10k"), &ds, 0, Ratios::default()).unwrap_err();
    assert!(
        matches!(e, DataError::MissingFile { .. }) && e.to_string().contains("splits.csv"),
        "{e}"
    );
    // an image of the dataset not listed
    let mut ds2 = ds.clone();
    ds2.samples[2].name = "999.webp".into();
    let e = clive::split(&root, &ds2, 0, Ratios::default()).unwrap_err();
    assert!(
        matches!(e, DataError::NotListed { .. }) && e.to_string().contains("999.webp"),
        "{e}"
    );
    // too few images for the ratios
    let mut ds3 = ds.clone();
    ds3.samples.truncate(3);
    assert!(clive::split(&root, &ds3, 0, Ratios::default()).is_err());
}

#[test]
fn clive_unknown_layout() {
    let e = clive::load(fixture("tid2013"), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e, DataError::Layout { .. }) && e.to_string().contains("mos.csv"),
        "{e}"
    );
}

#[test]
fn koniq_official_split() {
    let root = fixture("koniq10k");
    let csv = root.join("koniq10k_distributions_sets.csv");
    let (ds, s) =
        koniq::load_with_split(&csv, root.join("1024x768"), &LoadOptions::default()).unwrap();
    assert_eq!(ds.name, "KonIQ-10k");
    assert_eq!(ds.len(), 5);
    assert_eq!(ds.samples[0].mos, 77.3836206897);
    assert_eq!(ds.samples[0].mos_std, Some(0.527277894494));
    assert!(ds.samples.iter().all(|s| s.path.is_file()));
    assert_eq!((s.train, s.val, s.test), (vec![0, 3], vec![2], vec![1, 4]));
    assert_eq!(
        koniq::load(&csv, &root, &LoadOptions::default())
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn kadid_layout() {
    let ds = kadid::load(fixture("kadid10k"), &LoadOptions::default()).unwrap();
    assert_eq!(ds.len(), 4);
    let s = &ds.samples[1];
    assert_eq!(s.name, "I01_25_05.png");
    assert_eq!(s.reference.as_deref(), Some("I01"));
    assert_eq!(s.distortion.as_deref(), Some("contrast_change"));
    assert_eq!(s.level, Some(5));
    assert_eq!(s.mos, 2.10);
    assert!((s.mos_std.unwrap() - 0.91).abs() < 1e-12);
    assert_eq!(ds.samples[0].distortion.as_deref(), Some("gaussian_blur"));
    assert_eq!(ds.samples[2].distortion.as_deref(), Some("jpeg"));
    assert_eq!(ds.samples[3].distortion.as_deref(), Some("jitter"));
    assert!(ds.samples.iter().all(|s| s.path.is_file()));
    assert_eq!(kadid::DISTORTIONS.len(), 25);
    assert_eq!(kadid::DISTORTIONS[6], "color_saturation_1");
    assert_eq!(kadid::DISTORTION_NAMES[7], "Color saturation 2 (LAB)");
    assert_eq!(
        kadid::parse_name("I81_13_04.png"),
        Some(("I81".into(), 13, 4))
    );
    assert_eq!(kadid::parse_name("I81_26_04.png"), None);
}

#[test]
fn tid2013_layout() {
    let ds = tid2013::load(fixture("tid2013"), &LoadOptions::default()).unwrap();
    assert_eq!(ds.len(), 3);
    let s = &ds.samples[1];
    assert_eq!(s.name, "i03_08_4.bmp");
    assert_eq!(s.reference.as_deref(), Some("i03"));
    assert_eq!(s.distortion.as_deref(), Some("gaussian_blur"));
    assert_eq!(s.level, Some(4));
    assert_eq!(s.mos, 4.13158);
    assert_eq!(s.mos_std, Some(0.2));
    assert_eq!(
        ds.samples[2].reference.as_deref(),
        Some("i25"),
        "upper-case I25 normalised"
    );
    assert_eq!(
        ds.samples[2].distortion.as_deref(),
        Some("sparse_sampling_and_reconstruction")
    );
    // file names differ in case from the list: found anyway
    assert!(
        ds.samples.iter().all(|s| s.path.is_file()),
        "{:?}",
        ds.samples
    );
    assert_eq!(tid2013::DISTORTIONS.len(), 24);
    assert_eq!(tid2013::DISTORTIONS[9], "jpeg_compression");
}

#[test]
fn tid2013_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mos_with_names.txt"),
        "5.1 i01_01_1.bmp\nabc i01_01_2.bmp\n",
    )
    .unwrap();
    let e = tid2013::load(dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e, DataError::BadLine { line: 2, .. }) && e.to_string().contains("abc"),
        "{e}"
    );
}

#[test]
fn generic_csv_defaults_and_custom_columns() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("labels.csv");
    std::fs::write(
        &p,
        "image,mos,reference,distortion,level\na.png,1.5,r1,blur,2\nb.png,2.5,,,\n",
    )
    .unwrap();
    let ds = csv::load(
        &p,
        dir.path().join("imgs"),
        &csv::CsvColumns::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(ds.name, "csv:labels.csv");
    assert_eq!(ds.samples[0].path, dir.path().join("imgs/a.png"));
    assert_eq!(ds.samples[0].reference.as_deref(), Some("r1"));
    assert_eq!(ds.samples[0].level, Some(2));
    assert_eq!(ds.samples[0].mos_std, None);
    assert_eq!(ds.samples[1].reference, None);

    let p2 = dir.path().join("custom.csv");
    std::fs::write(&p2, "file;score\n").unwrap();
    std::fs::write(&p2, "file,score,sd\nx.jpg,70,3\n").unwrap();
    let cols = csv::CsvColumns {
        image: "file".into(),
        mos: "score".into(),
        mos_std: Some("sd".into()),
        ..Default::default()
    };
    let ds = csv::load(&p2, dir.path(), &cols, &LoadOptions::default()).unwrap();
    assert_eq!(
        (ds.samples[0].mos, ds.samples[0].mos_std),
        (70.0, Some(3.0))
    );
    // a renamed optional column must exist
    let cols = csv::CsvColumns {
        reference: Some("ref".into()),
        ..cols
    };
    let e = csv::load(&p2, dir.path(), &cols, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&e, DataError::MissingColumn { column, .. } if column == "ref"),
        "{e}"
    );
}

#[test]
fn csv_without_mos_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.csv");
    std::fs::write(&p, "image,score\na.png,1\n").unwrap();
    let e = csv::load(
        &p,
        dir.path(),
        &csv::CsvColumns::default(),
        &LoadOptions::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, DataError::MissingColumn { column, .. } if column == "mos"),
        "{msg}"
    );
    assert!(msg.contains("bad.csv") && msg.contains("`mos`"), "{msg}");
}

#[test]
fn csv_non_numeric_mos_names_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.csv");
    std::fs::write(&p, "image,mos\na.png,1\nb.png,1.5\nc.png,good\n").unwrap();
    let e = csv::load(
        &p,
        dir.path(),
        &csv::CsvColumns::default(),
        &LoadOptions::default(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, DataError::BadValue { row: 4, column, .. } if column == "mos"),
        "{msg}"
    );
    assert!(
        msg.contains("bad.csv") && msg.contains("row 4") && msg.contains("good"),
        "{msg}"
    );
    // missing file
    let e = csv::load(
        dir.path().join("nope.csv"),
        dir.path(),
        &csv::CsvColumns::default(),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, DataError::MissingFile { .. }) && e.to_string().contains("nope.csv"),
        "{e}"
    );
}

#[test]
fn koniq_bad_set_value() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k.csv");
    std::fs::write(
        &p,
        "image_name,MOS,SD,set\na.jpg,50,1,training\nb.jpg,60,1,holdout\n",
    )
    .unwrap();
    let e = koniq::load_with_split(&p, dir.path(), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(&e, DataError::BadValue { row: 3, column, .. } if column == "set"),
        "{e}"
    );
    assert!(koniq::load(&p, dir.path(), &LoadOptions::default()).is_ok());
}

/// A splits file with all of the reference's 1000 permutations serves any exp_id as the
/// reference's `index[:, exp_id % 1000]`; one with fewer refuses ids beyond them.
#[test]
fn clive_exp_ids_beyond_the_file_wrap_only_over_the_references_1000() {
    let root = fixture("clive_normiqa");
    let ds = clive::load(&root, &LoadOptions::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("splits-1000.csv");
    let mut text = String::from("image");
    for k in 0..clive::REFERENCE_PERMUTATIONS {
        text.push_str(&format!(",order_{k}"));
    }
    text.push('\n');
    for (i, s) in ds.samples.iter().enumerate() {
        text.push_str(&s.name);
        for k in 0..clive::REFERENCE_PERMUTATIONS {
            text.push_str(&format!(",{}", (i * 3 + k) % ds.len()));
        }
        text.push('\n');
    }
    std::fs::write(&file, text).unwrap();
    let at = |id| clive::split_from(&file, &ds, id, Ratios::default()).unwrap();
    assert_eq!(at(1003), at(3));
    assert_ne!(at(12), at(3));
    let e = clive::split_from(&root.join("splits.csv"), &ds, 12, Ratios::default()).unwrap_err();
    assert!(e.to_string().contains("order_12"), "{e}");
}
