//! Every loader confines image paths to its image folder and refuses images listed twice,
//! unless the user opts in ([`LoadOptions`]).
use std::path::{Path, PathBuf};

use normiqa_core::data::rows::{stays_inside, Place};
use normiqa_core::data::{clive, csv, kadid, koniq, tid2013, DataError, LoadOptions};

const ALLOW_OUTSIDE: LoadOptions = LoadOptions {
    allow_outside_root: true,
    drop_duplicates: false,
};
const DROP_DUPLICATES: LoadOptions = LoadOptions {
    allow_outside_root: false,
    drop_duplicates: true,
};

fn strict() -> LoadOptions {
    LoadOptions::default()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn csv_load(p: &Path, root: &Path, opts: &LoadOptions) -> normiqa_core::data::Result<Vec<String>> {
    let ds = csv::load(p, root, &csv::CsvColumns::default(), opts)?;
    Ok(ds.samples.iter().map(|s| s.name.clone()).collect())
}

fn assert_outside(e: DataError, file: &str, at: Place, name: &str) {
    let msg = e.to_string();
    assert!(
        matches!(&e, DataError::OutsideRoot { at: a, name: n, .. } if *a == at && n == name),
        "{msg}"
    );
    assert!(
        msg.contains(file) && msg.contains(&at.to_string()) && msg.contains("--allow-outside-root"),
        "{msg}"
    );
}

fn assert_duplicate(e: DataError, file: &str, first: Place, at: Place) {
    let msg = e.to_string();
    assert!(
        matches!(&e, DataError::Duplicate { first: f, at: a, .. } if *f == first && *a == at),
        "{msg}"
    );
    assert!(
        msg.contains(file)
            && msg.contains(&first.to_string())
            && msg.contains(&at.to_string())
            && msg.contains("--drop-duplicates"),
        "{msg}"
    );
}

#[test]
fn paths_are_checked_on_their_text() {
    for inside in ["a.png", "sub/a.png", "./a.png", "sub/../a.png", "a..b.png"] {
        assert!(stays_inside(inside), "{inside}");
    }
    for outside in [
        "../a.png",
        "../../etc/passwd",
        "/etc/passwd",
        "sub/../../a.png",
    ] {
        assert!(!stays_inside(outside), "{outside}");
    }
}

#[test]
fn csv_paths_outside_the_image_folder_are_refused_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("imgs");
    for (bad, row) in [("../../etc/passwd", 3), ("/etc/passwd", 3)] {
        let text = format!("image,mos\na.png,1\n{bad},2\n");
        let p = write(dir.path(), "labels.csv", &text);
        let e = csv_load(&p, &root, &strict()).unwrap_err();
        assert_outside(e, "labels.csv", Place::Row(row), bad);
        // opted in: read as written
        assert_eq!(csv_load(&p, &root, &ALLOW_OUTSIDE).unwrap()[1], bad);
    }
    let p = write(
        dir.path(),
        "ok.csv",
        "image,mos\nsub/../a.png,1\n./b.png,2\n",
    );
    assert_eq!(csv_load(&p, &root, &strict()).unwrap().len(), 2);
}

#[test]
fn csv_duplicates_are_refused_naming_both_rows_or_dropped_keeping_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "labels.csv",
        "image,mos\na.png,1\nb.png,2\n./a.png,3\nc.png,4\n",
    );
    let e = csv_load(&p, dir.path(), &strict()).unwrap_err();
    assert_duplicate(e, "labels.csv", Place::Row(2), Place::Row(4));
    let ds = csv::load(&p, dir.path(), &Default::default(), &DROP_DUPLICATES).unwrap();
    let kept: Vec<(&str, f64)> = ds
        .samples
        .iter()
        .map(|s| (s.name.as_str(), s.mos))
        .collect();
    assert_eq!(kept, [("a.png", 1.0), ("b.png", 2.0), ("c.png", 4.0)]);
}

#[test]
fn koniq_checks_paths_and_duplicates_and_keeps_the_split_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let head = "image_name,MOS,SD,set\n";
    let p = write(
        dir.path(),
        "k.csv",
        &format!("{head}a.jpg,50,1,training\n../x.jpg,60,1,test\n"),
    );
    let e = koniq::load(&p, dir.path(), &strict()).unwrap_err();
    assert_outside(e, "k.csv", Place::Row(3), "../x.jpg");
    let p = write(
        dir.path(),
        "k.csv",
        &format!(
            "{head}a.jpg,50,1,training\nb.jpg,55,1,validation\na.jpg,60,1,test\nc.jpg,65,1,test\n"
        ),
    );
    let e = koniq::load_with_split(&p, dir.path(), &strict()).unwrap_err();
    assert_duplicate(e, "k.csv", Place::Row(2), Place::Row(4));
    let (ds, split) = koniq::load_with_split(&p, dir.path(), &DROP_DUPLICATES).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(
        (split.train, split.val, split.test),
        (vec![0], vec![1], vec![2])
    );
    assert_eq!(ds.samples[2].name, "c.jpg");
}

#[test]
fn kadid_checks_paths_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let head = "dist_img,ref_img,dmos,var\n";
    write(
        dir.path(),
        "dmos.csv",
        &format!("{head}I01_01_01.png,I01.png,4,0.5\n../../I01_01_02.png,I01.png,3,0.5\n"),
    );
    let e = kadid::load(dir.path(), &strict()).unwrap_err();
    assert_outside(e, "dmos.csv", Place::Row(3), "../../I01_01_02.png");
    write(
        dir.path(),
        "dmos.csv",
        &format!("{head}I01_01_01.png,I01.png,4,0.5\nI01_01_02.png,I01.png,3,0.5\nI01_01_01.png,I01.png,2,0.5\n"),
    );
    let e = kadid::load(dir.path(), &strict()).unwrap_err();
    assert_duplicate(e, "dmos.csv", Place::Row(2), Place::Row(4));
    let ds = kadid::load(dir.path(), &DROP_DUPLICATES).unwrap();
    assert_eq!((ds.len(), ds.samples[0].mos), (2, 4.0));
}

#[test]
fn tid2013_checks_paths_and_duplicates_and_keeps_std_aligned() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "mos_with_names.txt",
        "5.0 i01_01_1.bmp\n4.0 /tmp/i01_01_2.bmp\n",
    );
    let e = tid2013::load(dir.path(), &strict()).unwrap_err();
    assert_outside(e, "mos_with_names.txt", Place::Line(2), "/tmp/i01_01_2.bmp");
    write(
        dir.path(),
        "mos_with_names.txt",
        "5.0 i01_01_1.bmp\n4.0 i01_01_1.bmp\n3.0 i01_01_2.bmp\n",
    );
    write(dir.path(), "mos_std.txt", "0.1\n0.2\n0.3\n");
    let e = tid2013::load(dir.path(), &strict()).unwrap_err();
    assert_duplicate(e, "mos_with_names.txt", Place::Line(1), Place::Line(2));
    let ds = tid2013::load(dir.path(), &DROP_DUPLICATES).unwrap();
    let kept: Vec<(f64, Option<f64>)> = ds.samples.iter().map(|s| (s.mos, s.mos_std)).collect();
    assert_eq!(kept, [(5.0, Some(0.1)), (3.0, Some(0.3))]);
}

#[test]
fn clive_normiqa_layout_goes_through_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();
    write(
        dir.path(),
        "mos.csv",
        "image,mos,mos_std\n1.jpg,50,1\n2.jpg,60,1\n1.jpg,70,1\n",
    );
    let e = clive::load(dir.path(), &strict()).unwrap_err();
    assert_duplicate(e, "mos.csv", Place::Row(2), Place::Row(4));
    write(
        dir.path(),
        "mos.csv",
        "image,mos,mos_std\n1.jpg,50,1\n../2.jpg,60,1\n",
    );
    let e = clive::load(dir.path(), &strict()).unwrap_err();
    assert_outside(e, "mos.csv", Place::Row(3), "../2.jpg");
}

/// A link inside the image folder to a file outside it leaves the folder as `../` does: refused
/// by its resolved path, naming the row and the link's target; a link to a file inside the
/// folder is fine.
#[test]
fn a_link_inside_the_image_folder_to_a_file_outside_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("imgs");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let secret = write(dir.path(), "secret.txt", "not an image");
    write(&root, "a.png", "x");
    std::os::unix::fs::symlink(&secret, root.join("escape.png")).unwrap();
    std::os::unix::fs::symlink(root.join("a.png"), root.join("sub/inside.png")).unwrap();
    let p = write(dir.path(), "labels.csv", "image,mos\nsub/inside.png,1\nescape.png,2\n");
    let e = csv_load(&p, &root, &strict()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(&e, DataError::OutsideRoot { at: Place::Row(3), .. }), "{msg}");
    assert!(msg.contains("escape.png (a link to ") && msg.contains("secret.txt"), "{msg}");
    assert_eq!(csv_load(&p, &root, &ALLOW_OUTSIDE).unwrap().len(), 2);
}
