//! `normiqa import-checkpoint --from linearityiqa`: a checkpoint of the authors' IQAModel
//! (resnet18, weights from a deterministic formula) imported and scored with `predict` gives the
//! scores of the authors' test_demo.py rule `y[-1]·k[0] + b[0]`, computed by PyTorch with the
//! authors' own IQAModel code (reference/linearity_checkpoint.py → tests/data/import_linearityiqa).

mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use common::{write_torch_checkpoint, TensorData};
use normiqa::cli::{run, Cli};
use serde_json::Value;

fn cli(args: &[&str]) -> anyhow::Result<()> {
    run(Cli::try_parse_from(
        std::iter::once("normiqa").chain(args.iter().copied()),
    )?)
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/import_linearityiqa")
}

fn expected() -> Value {
    let s = std::fs::read_to_string(data_dir().join("expected.json")).unwrap();
    serde_json::from_str(&s).unwrap()
}

fn fnv1a32(s: &str) -> u32 {
    s.bytes().fold(0x811C_9DC5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

/// `uniform01` of reference/linearity_checkpoint.py.
fn uniform01(name: &str, i: u64) -> f64 {
    let mut h = (fnv1a32(name) as u64).wrapping_add(i.wrapping_mul(0x9E37_79B1)) as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85EB_CA6B);
    h ^= h >> 13;
    h = h.wrapping_mul(0xC2B2_AE35);
    h ^= h >> 16;
    h as f64 / 4_294_967_296.0
}

/// `formula_values` of reference/linearity_checkpoint.py.
fn formula_values(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let leaf = name.rsplit('.').next().unwrap();
    let fan_in: usize = shape.iter().skip(1).product();
    (0..n as u64)
        .map(|i| {
            let u = uniform01(name, i);
            let v = match leaf {
                "running_var" => 0.5 + u,
                "running_mean" => 0.2 * (2.0 * u - 1.0),
                "bias" => 0.1 * (2.0 * u - 1.0),
                _ if shape.len() == 1 => 0.8 + 0.4 * u,
                _ => (2.0 * u - 1.0) * (3.0 / fan_in as f64).sqrt(),
            };
            v as f32
        })
        .collect()
}

/// The state dict the Python script filled: names and shapes from expected.json.
fn reference_tensors(exp: &Value) -> Vec<(String, Vec<usize>, TensorData)> {
    exp["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let name = t["name"].as_str().unwrap().to_string();
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let data = if t["dtype"] == "int64" {
                TensorData::I64(vec![7])
            } else {
                TensorData::F32(formula_values(&name, &shape))
            };
            (name, shape, data)
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn imported_checkpoint_predicts_the_reference_test_demo_scores() {
    let exp = expected();
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("p1q2.pth");
    let (k, b) = (floats(&exp["k"]), floats(&exp["b"]));
    write_torch_checkpoint(
        &ckpt,
        "model",
        &reference_tensors(&exp),
        &[("k", &k), ("b", &b)],
    );
    let run_dir = tmp.path().join("imported");
    let arch = exp["arch"].as_str().unwrap();
    cli(&[
        "import-checkpoint",
        "--from",
        "linearityiqa",
        ckpt.to_str().unwrap(),
        "--arch",
        arch,
        "--out",
        run_dir.to_str().unwrap(),
    ])
    .unwrap();
    for f in ["config.toml", "run.json", "weights.safetensors", "import.json"] {
        assert!(run_dir.join(f).exists(), "{f} missing");
    }
    let out = tmp.path().join("scores.json");
    let scores = exp["scores"].as_array().unwrap();
    let mut args = vec!["predict".to_string()];
    args.extend(
        scores
            .iter()
            .map(|s| data_dir().join(s["image"].as_str().unwrap()).display().to_string()),
    );
    // fp32: the parity with the reference (which runs in fp32) is the point of this test.
    for a in ["--model", run_dir.to_str().unwrap(), "--all-heads", "--format", "json", "--precision", "fp32"] {
        args.push(a.into());
    }
    args.extend(["--device".into(), "cpu".into(), "-o".into(), out.display().to_string()]);
    cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    let got: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    // (the first element is the record of the model and options)
    let got = &got.as_array().unwrap()[1..];
    assert_eq!(got.len(), scores.len());
    for e in scores {
        // (predict prints images sorted by name; match the rows by name)
        let name = e["image"].as_str().unwrap();
        let g = got
            .iter()
            .find(|g| g["image"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not scored"));
        let (score, want) = (g["score"].as_f64().unwrap(), e["score"].as_f64().unwrap());
        assert!((score - want).abs() < 1e-3, "{name}: {score} vs reference {want}");
        let heads: Vec<f64> = ["head6", "head7", "fused"]
            .iter()
            .map(|h| g[*h].as_f64().unwrap())
            .collect();
        let raw = floats(&e["raw"]);
        for h in 0..3 {
            assert!((heads[h] - raw[h]).abs() < 1e-4, "{name} head {h}: {heads:?} vs {raw:?}");
        }
        // head 6 and 7 as IQAPerformance maps them (k[1], b[1] and k[2], b[2])
        for (h, key) in [(0, "head6_mapped"), (1, "head7_mapped")] {
            let m = &info["mapping"][h];
            let mapped = m["k"].as_f64().unwrap() * heads[h] + m["b"].as_f64().unwrap();
            let want = e[key].as_f64().unwrap();
            assert!((mapped - want).abs() < 1e-3, "{name} {key}: {mapped} vs {want}");
        }
    }
    // the images differ by more than the tolerance, so the check can tell them apart
    let s: Vec<f64> = scores.iter().map(|s| s["score"].as_f64().unwrap()).collect();
    assert!((s[0] - s[1]).abs() > 1e-2);
    imported_scores_name_the_scale_of_the_data_given(&ckpt, arch, tmp.path(), &run_dir);
}

/// The scale `predict` names: unknown when the data was not named at import (the default
/// dataset, CLIVE, would mislabel the authors' KonIQ-trained checkpoints), that of the dataset
/// given otherwise.
fn imported_scores_name_the_scale_of_the_data_given(ckpt: &Path, arch: &str, tmp: &Path, unnamed: &Path) {
    let scale = normiqa::run::RunInfo::load(unnamed).unwrap().score_scale();
    assert!(!scale.contains("CLIVE") && scale.contains("not named at import"), "{scale}");
    let koniq = tmp.join("imported-koniq");
    cli(&[
        "import-checkpoint", "--from", "linearityiqa", ckpt.to_str().unwrap(), "--arch", arch,
        "--dataset", "koniq", "--labels", "koniq10k_distributions_sets.csv", "--images", "1024x768",
        "--out", koniq.to_str().unwrap(),
    ])
    .unwrap();
    let scale = normiqa::run::RunInfo::load(&koniq).unwrap().score_scale();
    assert!(scale.starts_with("KonIQ-10k MOS scale"), "{scale}");
}

/// A tiny stand-in checkpoint (wrong for any architecture) to exercise the error paths.
fn small_checkpoint(dir: &Path, with_k: bool) -> PathBuf {
    let p = dir.join(if with_k { "small.pth" } else { "nok.pth" });
    let tensors = vec![(
        "features.0.weight".to_string(),
        vec![2, 3, 1, 1],
        TensorData::F32(vec![0.5; 6]),
    )];
    let k = [1.0, 2.0, 3.0];
    let lists: Vec<(&str, &[f64])> = if with_k {
        vec![("k", &k[..]), ("b", &k[..])]
    } else {
        vec![("b", &k[..])]
    };
    write_torch_checkpoint(&p, "model", &tensors, &lists);
    p
}

#[test]
fn import_errors_name_the_file_and_what_to_change() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let nok = small_checkpoint(tmp.path(), false);
    let err = format!(
        "{:#}",
        cli(&["import-checkpoint", "--from", "linearityiqa", nok.to_str().unwrap(), "--arch", "resnet18", "--out", o])
            .unwrap_err()
    );
    assert!(err.contains("nok.pth") && err.contains("no 'k' entry"), "{err}");

    let small = small_checkpoint(tmp.path(), true);
    let err = format!(
        "{:#}",
        cli(&["import-checkpoint", "--from", "linearityiqa", small.to_str().unwrap(), "--arch", "resnet18", "--out", o])
            .unwrap_err()
    );
    assert!(
        err.contains("small.pth")
            && err.contains("--arch resnet18")
            && err.contains("features.0.weight")
            && err.contains("[64, 3, 7, 7]"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written on failure");

    let err = format!(
        "{:#}",
        cli(&["import-checkpoint", "--from", "linearityiqa", small.to_str().unwrap(), "--arch", "efficientnet-lite0", "--out", o])
            .unwrap_err()
    );
    assert!(err.contains("--arch efficientnet-lite0"), "{err}");

    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("run.json"), "{}").unwrap();
    let err = format!(
        "{:#}",
        cli(&["import-checkpoint", "--from", "linearityiqa", small.to_str().unwrap(), "--arch", "resnet18", "--out", o])
            .unwrap_err()
    );
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("run.json")).unwrap(), "{}");
}
