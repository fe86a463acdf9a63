//! Tests of the `.pth` reader on fixtures written by `reference/make_pth_fixtures.py`
//! (torch.save layouts reproduced without torch) and on a real legacy-format file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use normiqa_core::weights::pickle::{self, PickleError};
use normiqa_core::weights::{
    read_pth, read_pth_bytes, read_pth_with, DType, PthErrorKind, RawTensor, ReadOptions, StateDict,
};
use serde_json::Value as Json;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pth")
}

fn expected() -> Json {
    let text = std::fs::read_to_string(data_dir().join("fixtures_expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn dtype_name(d: DType) -> &'static str {
    d.name()
}

/// Checks names (in order), dtypes, shapes and exact values against `[[name, {dtype, shape, values}], ...]`.
fn check_against(sd: &StateDict, exp: &Json, what: &str) {
    let exp = exp.as_array().unwrap();
    let names: Vec<&str> = sd.names().collect();
    let exp_names: Vec<&str> = exp.iter().map(|e| e[0].as_str().unwrap()).collect();
    assert_eq!(names, exp_names, "{what}: names");
    assert_eq!(sd.len(), exp.len());
    for e in exp {
        let name = e[0].as_str().unwrap();
        let d = &e[1];
        let t = sd.get(name).unwrap();
        assert_eq!(
            dtype_name(t.dtype),
            d["dtype"].as_str().unwrap(),
            "{what}/{name}: dtype"
        );
        let shape: Vec<usize> = d["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{what}/{name}: shape");
        assert_eq!(
            t.data.len(),
            t.numel() * t.dtype.size(),
            "{what}/{name}: byte length"
        );
        let vals = d["values"].as_array().unwrap();
        assert_eq!(vals.len(), t.numel(), "{what}/{name}: numel");
        match t.dtype {
            DType::Bool => {
                let got: Vec<bool> = t.data.iter().map(|&b| b != 0).collect();
                let want: Vec<bool> = vals.iter().map(|v| v.as_bool().unwrap()).collect();
                assert_eq!(got, want, "{what}/{name}: values");
            }
            DType::F32 | DType::F64 | DType::F16 | DType::BF16 => {
                let got = t.to_f64_vec();
                let want: Vec<f64> = vals.iter().map(|v| v.as_f64().unwrap()).collect();
                assert_eq!(got.len(), want.len());
                // (serde_json's default float parsing may be 1 ulp off in f64: compare f64 closely,
                // narrower types exactly after rounding to f32)
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    if t.dtype == DType::F64 {
                        assert!(
                            (g - w).abs() <= 4.0 * f64::EPSILON * w.abs(),
                            "{what}/{name}[{i}]: {g} != {w}"
                        );
                    } else {
                        assert_eq!(*g as f32, *w as f32, "{what}/{name}[{i}]");
                        assert_eq!(
                            g.is_sign_negative(),
                            w.is_sign_negative(),
                            "{what}/{name}[{i}]: sign"
                        );
                    }
                }
                // to_f32_vec agrees
                let f32s = t.to_f32_vec();
                for (g, w) in f32s.iter().zip(&want) {
                    assert_eq!(*g, *w as f32, "{what}/{name}: to_f32_vec");
                }
            }
            _ => {
                let got = t.to_i64_vec().unwrap();
                let want: Vec<i64> = vals.iter().map(|v| v.as_i64().unwrap()).collect();
                assert_eq!(got, want, "{what}/{name}: values");
            }
        }
    }
}

#[test]
fn zip_state_dict_fixture() {
    let sd = read_pth(&data_dir().join("tiny_zip.pth")).unwrap();
    check_against(&sd, &expected()["files"]["tiny_zip.pth"], "tiny_zip");
    // a few explicit checks, independent of the JSON
    let t = sd.get("fc.weight_t").unwrap();
    assert_eq!(t.shape, [5, 3]);
    let v = t.to_f32_vec();
    assert_eq!(&v[..3], &[0.0, 5.0 / 7.0, 10.0 / 7.0]);
    let nbt = sd.get("bn.num_batches_tracked").unwrap();
    assert_eq!(
        (nbt.dtype, nbt.shape.len(), nbt.numel()),
        (DType::I64, 0, 1)
    );
    assert_eq!(nbt.to_i64_vec().unwrap(), [12345678901]);
    let h = sd.get("half.weight").unwrap();
    assert_eq!(h.dtype, DType::F16);
    assert_eq!(
        h.to_f32_vec(),
        [0.5, -1.25, 3.0, 65504.0, 2f32.powi(-24), -0.0]
    );
    // storage offset 6 into linspace(-1, 1, 10)
    let bias = sd.get("conv.bias").unwrap().to_f32_vec();
    for (i, b) in bias.iter().enumerate() {
        assert!(
            (b - (-1.0 + (i + 6) as f32 * 2.0 / 9.0)).abs() < 1e-6,
            "{bias:?}"
        );
    }
}

#[test]
fn zip_checkpoint_fixture() {
    let path = data_dir().join("checkpoint_zip.pth");
    // {'model': sd, 'epoch': 3, 'optimizer': {...}}: the model's tensors are picked, others ignored
    let sd = read_pth(&path).unwrap();
    check_against(
        &sd,
        &expected()["files"]["checkpoint_zip.pth"],
        "checkpoint",
    );
    // DataParallel prefix stripping
    let opts = ReadOptions {
        strip_module_prefix: true,
        ..Default::default()
    };
    let sd = read_pth_with(&path, &opts).unwrap();
    let names: Vec<&str> = sd.names().collect();
    assert_eq!(names, ["lin.weight", "lin.bias", "bn.num_batches_tracked"]);
    assert_eq!(sd.get("lin.bias").unwrap().to_f32_vec(), [1.5, 2.5]);
    // explicit key
    let opts = ReadOptions {
        key: Some("optimizer".into()),
        ..Default::default()
    };
    let sd = read_pth_with(&path, &opts).unwrap();
    check_against(&sd, &expected()["checkpoint_optimizer"], "optimizer");
    let opts = ReadOptions {
        key: Some("nope".into()),
        ..Default::default()
    };
    let err = read_pth_with(&path, &opts).unwrap_err();
    assert!(err.to_string().contains("'nope' not found"), "{err}");
}

#[test]
fn legacy_fixture() {
    let sd = read_pth(&data_dir().join("tiny_legacy.pth")).unwrap();
    check_against(&sd, &expected()["files"]["tiny_legacy.pth"], "tiny_legacy");
    // old-style storage view: root = 0,10,..,70; view = root[2..6]; tensor offset 1, size 3
    assert_eq!(sd.get("view.a").unwrap().to_f32_vec(), [30.0, 40.0, 50.0]);
    assert_eq!(
        sd.get("view.b").unwrap().to_f32_vec(),
        [20.0, 40.0, 30.0, 50.0]
    );
    // nn.Parameter (torch._utils._rebuild_parameter) sharing the storage of features.0.weight
    assert_eq!(
        sd.get("features.0.bias").unwrap().to_f32_vec(),
        [-4.0, 5.5, 1e-7]
    );
}

// ---------------------------------------------------------------------------
// the real legacy-format file

/// `NORMIQA_EFFICIENTNET_LITE0` if set (then the file must be readable: a bad path fails the test);
/// otherwise `<repo>/.venv/efficientnet-lite0.pth` if it exists.
fn real_file() -> Option<PathBuf> {
    match std::env::var_os("NORMIQA_EFFICIENTNET_LITE0") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let p =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/efficientnet-lite0.pth");
            if p.exists() {
                Some(p)
            } else {
                eprintln!(
                    "NORMIQA_EFFICIENTNET_LITE0 unset and {} missing: skipping",
                    p.display()
                );
                None
            }
        }
    }
}

#[test]
fn real_efficientnet_lite0_legacy() {
    let Some(path) = real_file() else { return };
    let t0 = std::time::Instant::now();
    let sd = read_pth(&path).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "read {} tensors from {} in {:?}",
        sd.len(),
        path.display(),
        t0.elapsed()
    );

    let text =
        std::fs::read_to_string(data_dir().join("efficientnet_lite0_expected.json")).unwrap();
    let exp: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(sd.len(), 296);
    assert_eq!(sd.len() as u64, exp["count"].as_u64().unwrap());
    let tensors = exp["tensors"].as_array().unwrap();
    for ((name, t), e) in sd.tensors.iter().zip(tensors) {
        assert_eq!(name, e[0].as_str().unwrap());
        let shape: Vec<usize> = e[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.shape, shape, "{name}");
    }
    assert_eq!(sd.get("_conv_stem.weight").unwrap().shape, [32, 3, 3, 3]);
    assert_eq!(sd.get("_fc.weight").unwrap().shape, [1000, 1280]);
    let nbt = sd.get("_bn0.num_batches_tracked").unwrap();
    assert_eq!(
        (nbt.dtype, nbt.shape.is_empty(), nbt.to_i64_vec().unwrap()),
        (DType::I64, true, vec![0])
    );

    for (name, e) in exp["spot"].as_object().unwrap() {
        let t: &RawTensor = sd.get(name).unwrap_or_else(|| panic!("missing {name}"));
        assert_eq!(t.dtype.name(), e["dtype"].as_str().unwrap(), "{name}");
        let v = t.to_f64_vec();
        let sum: f64 = v.iter().sum();
        let abs_sum: f64 = v.iter().map(|x| x.abs()).sum();
        let tol = 1e-9 * e["abs_sum"].as_f64().unwrap() + 1e-12;
        assert!(
            (sum - e["sum"].as_f64().unwrap()).abs() <= tol,
            "{name}: sum {sum} vs {}",
            e["sum"]
        );
        assert!(
            (abs_sum - e["abs_sum"].as_f64().unwrap()).abs() <= tol,
            "{name}: abs_sum"
        );
        for (i, f) in e["first"].as_array().unwrap().iter().enumerate() {
            assert_eq!(v[i] as f32, f.as_f64().unwrap() as f32, "{name}[{i}]");
        }
        assert_eq!(
            *v.last().unwrap() as f32,
            e["last"].as_f64().unwrap() as f32,
            "{name}: last"
        );
    }
}

// ---------------------------------------------------------------------------
// errors

fn write_tmp(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(data_dir().join(name)).unwrap()
}

#[test]
fn error_missing_file_names_it() {
    let p = data_dir().join("does-not-exist.pth");
    let err = read_pth(&p).unwrap_err();
    assert!(matches!(err.kind, PthErrorKind::Io(_)));
    assert!(err.to_string().contains("does-not-exist.pth"), "{err}");
}

#[test]
fn error_random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            (x >> 24) as u8
        })
        .collect();
    let p = write_tmp(&dir, "random.pth", &bytes);
    let err = read_pth(&p).unwrap_err();
    assert!(matches!(err.kind, PthErrorKind::NotTorchFile(_)), "{err}");
    assert!(err.to_string().contains("random.pth"), "{err}");
    // an arbitrary pickle is not a torch file either
    let p = write_tmp(&dir, "plain.pkl", b"\x80\x02K\x07.");
    let err = read_pth(&p).unwrap_err();
    assert!(matches!(err.kind, PthErrorKind::NotTorchFile(_)), "{err}");
    let p = write_tmp(&dir, "empty.pth", b"");
    assert!(matches!(
        read_pth(&p).unwrap_err().kind,
        PthErrorKind::NotTorchFile(_)
    ));
}

#[test]
fn error_wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = fixture_bytes("tiny_legacy.pth");
    assert_eq!(&bytes[..4], b"\x80\x02\x8a\x0a");
    bytes[4] ^= 0x01;
    let p = write_tmp(&dir, "badmagic.pth", &bytes);
    let err = read_pth(&p).unwrap_err();
    assert!(matches!(err.kind, PthErrorKind::NotTorchFile(_)), "{err}");
    assert!(err.to_string().contains("magic"), "{err}");
}

#[test]
fn error_truncated_legacy() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture_bytes("tiny_legacy.pth");
    // cut inside the last storage
    let p = write_tmp(&dir, "cut.pth", &bytes[..bytes.len() - 3]);
    let err = read_pth(&p).unwrap_err();
    assert!(
        matches!(err.kind, PthErrorKind::TruncatedStorage { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("cut.pth") && err.to_string().contains("truncated storage"),
        "{err}"
    );
    // cut inside the object pickle
    let p = write_tmp(&dir, "cut2.pth", &bytes[..300]);
    let err = read_pth(&p).unwrap_err();
    assert!(matches!(err.kind, PthErrorKind::Pickle { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn error_truncated_zip() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture_bytes("tiny_zip.pth");
    let p = write_tmp(&dir, "cut.pth", &bytes[..bytes.len() / 2]);
    let err = read_pth(&p).unwrap_err();
    assert!(matches!(err.kind, PthErrorKind::Zip(_)), "{err}");
    assert!(err.to_string().contains("cut.pth"), "{err}");
}

/// Rewrites a zip fixture, transforming each entry.
fn rewrite_zip(bytes: &[u8], mut f: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut e = src.by_index(i).unwrap();
        let name = e.name().to_string();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        if let Some(buf) = f(&name, buf) {
            out.start_file(name, opts).unwrap();
            out.write_all(&buf).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn error_truncated_and_missing_zip_storage() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture_bytes("tiny_zip.pth");
    let cut = rewrite_zip(&bytes, |n, mut b| {
        if n == "tiny_zip/data/0" {
            b.truncate(100);
        }
        Some(b)
    });
    let p = write_tmp(&dir, "short_storage.pth", &cut);
    let err = read_pth(&p).unwrap_err();
    assert!(
        matches!(&err.kind, PthErrorKind::TruncatedStorage { key, expected: 192, found: 100 } if key == "0"),
        "{err}"
    );
    let missing = rewrite_zip(&bytes, |n, b| (n != "tiny_zip/data/2").then_some(b));
    let p = write_tmp(&dir, "missing_storage.pth", &missing);
    let err = read_pth(&p).unwrap_err();
    assert!(matches!(err.kind, PthErrorKind::MissingStorage(_)), "{err}");
    // renamed prefix directory still reads (the prefix is arbitrary)
    let renamed = {
        let mut src = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for i in 0..src.len() {
            let mut e = src.by_index(i).unwrap();
            let name = e.name().replace("tiny_zip/", "some_other_name/");
            let mut buf = Vec::new();
            e.read_to_end(&mut buf).unwrap();
            out.start_file(name, opts).unwrap();
            out.write_all(&buf).unwrap();
        }
        out.finish().unwrap().into_inner()
    };
    let p = write_tmp(&dir, "renamed.pth", &renamed);
    let sd = read_pth(&p).unwrap();
    check_against(&sd, &expected()["files"]["tiny_zip.pth"], "renamed");
    // a zip that is not a torch archive
    let other = rewrite_zip(&bytes, |n, b| (!n.ends_with("data.pkl")).then_some(b));
    let p = write_tmp(&dir, "nopkl.pth", &other);
    assert!(matches!(
        read_pth(&p).unwrap_err().kind,
        PthErrorKind::NotTorchFile(_)
    ));
}

#[test]
fn error_unknown_storage_type() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = fixture_bytes("tiny_legacy.pth");
    let pat = b"torch\nHalfStorage\n";
    let i = bytes.windows(pat.len()).position(|w| w == pat).unwrap();
    // (same length; a name outside torch's storage classes would be refused as a global)
    bytes[i + 6..i + 17].copy_from_slice(b"Fp4xStorage");
    let p = write_tmp(&dir, "qint.pth", &bytes);
    let err = read_pth(&p).unwrap_err();
    assert!(
        matches!(&err.kind, PthErrorKind::UnknownStorageType(s) if s == "torch.Fp4xStorage"),
        "{err}"
    );
    assert!(err.to_string().contains("unknown storage type"), "{err}");
}

#[test]
fn zip_variants_fixture() {
    // protocol-4 pickle; UntypedStorage and dtype-object storage types; _rebuild_tensor (v1),
    // _rebuild_parameter_with_state, _rebuild_from_type_v2, torch.Size sizes; a non-tensor entry
    let sd = read_pth(&data_dir().join("variants_zip.pth")).unwrap();
    check_against(&sd, &expected()["files"]["variants_zip.pth"], "variants");
    assert_eq!(sd.get("untyped").unwrap().dtype, DType::U8);
    assert_eq!(sd.get("untyped").unwrap().data, [40, 120, 80, 160]); // transposed view of 0,40,..,200
    assert!(sd.get("not_a_tensor").is_none());
}

// ---------------------------------------------------------------------------
// crafted files: sizes bounded by the file, nesting bounded

/// A one-entry zip (stored) whose entry declares `declared` bytes through zip64 extra fields.
fn zip_declaring(name: &str, data: &[u8], declared: u64) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    let zip64 = |out: &mut Vec<u8>| {
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(&declared.to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    };
    let common = |out: &mut Vec<u8>| {
        out.extend_from_slice(&45u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&u32::MAX.to_le_bytes()); // sizes in the zip64 field
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes()); // extra length
    };
    let mut z = b"PK\x03\x04".to_vec();
    common(&mut z);
    z.extend_from_slice(name.as_bytes());
    zip64(&mut z);
    z.extend_from_slice(data);
    let cd_start = z.len();
    z.extend_from_slice(b"PK\x01\x02");
    z.extend_from_slice(&45u16.to_le_bytes()); // version made by
    common(&mut z);
    z.extend_from_slice(&[0; 14]); // comment length, disk, attributes, local header offset 0
    z.extend_from_slice(name.as_bytes());
    zip64(&mut z);
    let cd_len = z.len() - cd_start;
    z.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
    z.extend_from_slice(&(cd_len as u32).to_le_bytes());
    z.extend_from_slice(&(cd_start as u32).to_le_bytes());
    z.extend_from_slice(&[0, 0]);
    z
}

#[test]
fn zip_entry_declaring_2_pow_62_bytes_is_refused_before_allocating() {
    let bytes = zip_declaring("archive/data.pkl", b"\x80\x02}.", 1 << 62);
    assert!(bytes.len() < 250, "{} bytes", bytes.len());
    let err = read_pth_bytes(&bytes, Path::new("bomb.pth"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err.kind, PthErrorKind::Zip(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("bomb.pth") && msg.contains("4611686018427387904") && msg.contains("crafted"),
        "{msg}"
    );
    // the same entry declaring its true size reads (an empty state dict)
    let honest = zip_declaring("archive/data.pkl", b"\x80\x02}.", 4);
    let sd = read_pth_bytes(&honest, Path::new("ok.pth"), &ReadOptions::default()).unwrap();
    assert!(sd.is_empty());
}

fn nested_pickle(levels: usize) -> Vec<u8> {
    let mut p = b"\x80\x02N".to_vec();
    p.extend(std::iter::repeat(0x85).take(levels)); // TUPLE1
    p.push(b'.');
    p
}

fn one_entry_zip(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    out.start_file(name, opts).unwrap();
    out.write_all(data).unwrap();
    out.finish().unwrap().into_inner()
}

/// A zip-format file whose `data.pkl` is `pickle`.
fn zip_with_pickle(pickle: &[u8]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, body) in [
        ("archive/data.pkl", pickle),
        ("archive/byteorder", b"little".as_slice()),
        ("archive/version", b"3\n".as_slice()),
    ] {
        out.start_file(name, opts).unwrap();
        out.write_all(body).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn pickle_nested_200000_levels_is_an_error_not_a_stack_overflow() {
    let deep = nested_pickle(200_000);
    let zipped = one_entry_zip("archive/data.pkl", &deep);
    let err = read_pth_bytes(&zipped, Path::new("deep.pth"), &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            &err.kind,
            PthErrorKind::Pickle {
                err: PickleError::TooDeep { limit: 1000 },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("deep.pth"), "{err}");
    // as the first pickle of a legacy file
    let err = read_pth_bytes(&deep, Path::new("deep.pth"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err.kind, PthErrorKind::NotTorchFile(_)), "{err}");
    // and straight through the VM
    let err = pickle::load(&deep, 0).unwrap_err();
    assert!(matches!(err, PickleError::TooDeep { limit: 1000 }), "{err}");
}

/// A zip `torch.save` file with one f32 tensor `w` of the given shape and stride over a
/// storage of `numel` elements (all zero).
fn torch_zip_one_tensor(shape: &[u32], stride: &[u32], numel: u32) -> Vec<u8> {
    let mut pk = b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00w".to_vec();
    pk.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage");
    pk.extend_from_slice(b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ");
    pk.extend_from_slice(&numel.to_le_bytes());
    pk.extend_from_slice(b"tQJ\x00\x00\x00\x00(");
    for d in shape {
        pk.push(b'J');
        pk.extend_from_slice(&d.to_le_bytes());
    }
    pk.extend_from_slice(b"t(");
    for s in stride {
        pk.push(b'J');
        pk.extend_from_slice(&s.to_le_bytes());
    }
    pk.extend_from_slice(b"t\x89ccollections\nOrderedDict\n)RtRu.");
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    out.start_file("archive/data.pkl", opts).unwrap();
    out.write_all(&pk).unwrap();
    out.start_file("archive/data/0", opts).unwrap();
    out.write_all(&vec![0u8; 4 * numel as usize]).unwrap();
    out.finish().unwrap().into_inner()
}

#[test]
fn tensor_larger_than_the_file_through_zero_strides_is_refused() {
    let ok = torch_zip_one_tensor(&[2, 3], &[3, 1], 6);
    let sd = read_pth_bytes(&ok, Path::new("ok.pth"), &ReadOptions::default()).unwrap();
    assert_eq!(sd.get("w").unwrap().shape, vec![2, 3]);
    // 2^48 elements over one float: 1 PiB
    let bomb = torch_zip_one_tensor(&[1 << 16, 1 << 16, 1 << 16], &[0, 0, 0], 1);
    let err = read_pth_bytes(&bomb, Path::new("bomb.pth"), &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(&err.kind, PthErrorKind::BadTensor { name, .. } if name == "w"),
        "{err}"
    );
    assert!(err.to_string().contains("65536x65536x65536"), "{err}");
}

#[test]
fn a_pickle_calling_os_system_is_refused_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // {'w': os.system('echo pwned')}, with GLOBAL (protocol 2) and with STACK_GLOBAL (protocol 4)
    let global = b"\x80\x02}X\x01\x00\x00\x00wcos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85Rs.";
    let stack_global = b"\x80\x04}\x8c\x01w\x8c\x02os\x8c\x06system\x93\x8c\x0aecho pwned\x85Rs.";
    for (name, pk) in [("evil.pth", &global[..]), ("evil4.pth", &stack_global[..])] {
        let p = write_tmp(&dir, name, &zip_with_pickle(pk));
        let err = read_pth(&p).unwrap_err();
        assert!(
            matches!(&err.kind, PthErrorKind::RefusedGlobal { global } if global == "os.system"),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(name) && msg.contains("refused") && msg.contains("os.system"),
            "{msg}"
        );
        assert!(msg.contains("never runs code"), "{msg}");
    }
    // the legacy format is read through the same policy
    let mut bytes = fixture_bytes("tiny_legacy.pth");
    let pat = b"collections\nOrderedDict\n";
    let i = bytes.windows(pat.len()).position(|w| w == pat).unwrap();
    // (same length; the VM stops at the refused GLOBAL, before the padding)
    bytes[i..i + pat.len()].copy_from_slice(b"subprocess\nrun\n\n\n\n\n\n\n\n\n\n");
    let p = write_tmp(&dir, "evil_legacy.pth", &bytes);
    let err = read_pth(&p).unwrap_err();
    assert!(
        matches!(&err.kind, PthErrorKind::RefusedGlobal { global } if global == "subprocess.run"),
        "{err}"
    );
}

/// A `.pth` whose tensor storage is deflated and inflates to 256 MiB from a ~256 KB file is
/// refused before it is inflated (a 7.3 MB file inflating to 7.5 GB aborted the reader, exit
/// 134); the same tensor stored (uncompressed), as torch.save writes it, reads.
#[test]
fn a_deflate_bomb_pth_is_refused_before_inflating() {
    let numel: u32 = 64 << 20;
    let stored = torch_zip_one_tensor(&[4], &[1], 4);
    assert!(read_pth_bytes(&stored, Path::new("ok.pth"), &ReadOptions::default()).is_ok());
    let mut pk = b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00w".to_vec();
    pk.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage");
    pk.extend_from_slice(b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuJ");
    pk.extend_from_slice(&numel.to_le_bytes());
    pk.extend_from_slice(b"tQJ\x00\x00\x00\x00(J");
    pk.extend_from_slice(&numel.to_le_bytes());
    pk.extend_from_slice(b"t(J\x01\x00\x00\x00t\x89ccollections\nOrderedDict\n)RtRu.");
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored_opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    out.start_file("archive/data.pkl", stored_opts).unwrap();
    out.write_all(&pk).unwrap();
    out.start_file("archive/data/0", deflated).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..4 * (numel >> 20) {
        out.write_all(&zeros).unwrap();
    }
    let bomb = out.finish().unwrap().into_inner();
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let err = read_pth_bytes(&bomb, Path::new("bomb.pth"), &ReadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bomb.pth") && msg.contains("decompression bomb"), "{msg}");
}
