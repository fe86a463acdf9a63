use normiqa_core::data::mat::{self, MatValue};
use std::path::PathBuf;

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/datasets")
        .join(p)
}

#[test]
fn reads_fixture_cells_and_doubles() {
    // compressed cell array of UTF-16 char arrays (written by make_fixtures.py)
    let vars = mat::read(fixture("clive_official/Data/AllImages_release.mat")).unwrap();
    assert_eq!(vars.len(), 1);
    assert_eq!(vars[0].name, "AllImages_release");
    let names = vars[0].value.as_strings().unwrap();
    assert_eq!(names.len(), 12);
    assert_eq!(names[0], "t1.bmp");
    assert_eq!(names[9], "1000.JPG");
    // uncompressed double row vector
    let v = mat::read_var(
        fixture("clive_official/Data/AllStdDev_release.mat"),
        "AllStdDev_release",
    )
    .unwrap();
    match &v {
        MatValue::Numeric { dims, data } => {
            assert_eq!(dims, &vec![1, 12]);
            assert_eq!(data[7], 19.124726);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.mat");
    std::fs::write(&p, b"not a mat file").unwrap();
    let e = mat::read(&p).unwrap_err();
    assert!(e.to_string().contains("x.mat"), "{e}");
    let mut bytes = std::fs::read(fixture("clive_official/Data/AllImages_release.mat")).unwrap();
    bytes.truncate(bytes.len() - 20);
    assert!(mat::parse(&bytes).is_err());
    let mut hdf = vec![0u8; 200];
    hdf[..19].copy_from_slice(b"MATLAB 7.3 MAT-file");
    assert!(mat::parse(&hdf).unwrap_err().contains("7.3"));
}

#[test]
fn small_elements_and_big_endian() {
    // A big-endian file with one uncompressed 1x1 double `x` = 2.5 and a 1x2 char `s` = "ok"
    // whose name and data use the small-element format.
    fn be_elem(ty: u32, data: &[u8]) -> Vec<u8> {
        let mut v = ty.to_be_bytes().to_vec();
        v.extend((data.len() as u32).to_be_bytes());
        v.extend(data);
        v.resize(v.len().div_ceil(8) * 8, 0);
        v
    }
    fn small(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = (data.len() as u16).to_be_bytes().to_vec();
        v.extend(ty.to_be_bytes());
        v.extend(data);
        v.resize(8, 0);
        v
    }
    let flags = |class: u32| be_elem(6, &[class.to_be_bytes(), 0u32.to_be_bytes()].concat());
    let dims = |a: i32, b: i32| be_elem(5, &[a.to_be_bytes(), b.to_be_bytes()].concat());
    let mut x = flags(6);
    x.extend(dims(1, 1));
    x.extend(small(1, b"x"));
    x.extend(be_elem(9, &2.5f64.to_be_bytes()));
    let mut s = flags(4);
    s.extend(dims(1, 2));
    s.extend(small(1, b"s"));
    s.extend(small(4, &[0, b'o', 0, b'k']));
    let mut file = b"MATLAB 5.0 MAT-file".to_vec();
    file.resize(124, b' ');
    file.extend([0x01, 0x00]);
    file.extend(b"MI");
    file.extend(be_elem(14, &x));
    file.extend(be_elem(14, &s));
    let vars = mat::parse(&file).unwrap();
    assert_eq!(vars[0].name, "x");
    assert_eq!(vars[0].value.as_f64s().unwrap(), &[2.5]);
    assert_eq!(vars[1].name, "s");
    assert_eq!(vars[1].value.as_strings().unwrap(), vec!["ok".to_string()]);
}
