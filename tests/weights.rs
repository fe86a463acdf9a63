//! Strict weight loading: a run folder's `weights.safetensors` and a `.pth` backbone must hold
//! exactly the tensors the model expects (names and shapes), or loading fails with one message
//! listing the differences; nothing is left at its random initial value.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use normiqa::distill::mrkd::PlainIqa;
use normiqa::model::{linearity::BACKBONE_PREFIX, weights, LinearityIqa, ModelConfig};
use normiqa::infer::trained::TrainedModel;
use tch::{nn, Device, Kind, Tensor};

fn shipped_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/clive-efficientnet-lite0")
}

/// A copy of the shipped model's run folder (a frozen run: heads only in its weights).
fn copy_run(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    for f in ["run.json", "config.toml", "weights.safetensors"] {
        std::fs::copy(shipped_model().join(f), run.join(f)).unwrap();
    }
    run
}

fn read(file: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(file)
        .unwrap()
        .into_iter()
        .collect()
}

fn write(file: &Path, tensors: &BTreeMap<String, Tensor>) {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    Tensor::write_safetensors(&refs, file).unwrap();
}

#[test]
fn a_run_folder_must_hold_exactly_its_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path());
    let wfile = run.join("weights.safetensors");
    let good = read(&wfile);
    assert_eq!(good.len(), 42);
    TrainedModel::load(&run, Device::Cpu, None).unwrap();

    // No tensors at all (this scored 54.7 with exit 0): all 42 listed as missing, capped.
    write(&wfile, &BTreeMap::new());
    let err = common::load_refusal(&run);
    assert!(err.contains("weights.safetensors"), "{err}");
    assert!(err.contains("42 missing tensor(s) (dr6.0.bias, "), "{err}");
    assert!(err.contains("and 37 more"), "{err}");
    assert!(err.contains("train the run again"), "{err}");

    // Some missing.
    let mut partial = good
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect::<BTreeMap<_, _>>();
    partial.remove("regression.weight");
    partial.remove("dr7.5.running_var");
    write(&wfile, &partial);
    let err = common::load_refusal(&run);
    assert!(
        err.contains("2 missing tensor(s) (dr7.5.running_var, regression.weight)"),
        "{err}"
    );

    // An extra tensor: a frozen run stores no backbone, so a backbone tensor is unexpected.
    let mut extra = good
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect::<BTreeMap<_, _>>();
    extra.insert(
        "backbone._conv_stem.weight".into(),
        Tensor::zeros([32, 3, 3, 3], (Kind::Float, Device::Cpu)),
    );
    write(&wfile, &extra);
    let err = common::load_refusal(&run);
    assert!(
        err.contains("1 unexpected tensor(s) (backbone._conv_stem.weight)"),
        "{err}"
    );
    assert!(!err.contains("missing"), "{err}");

    // A wrong shape.
    let mut shaped = good
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect::<BTreeMap<_, _>>();
    shaped.insert(
        "regression.weight".into(),
        Tensor::zeros([1, 64], (Kind::Float, Device::Cpu)),
    );
    write(&wfile, &shaped);
    let err = common::load_refusal(&run);
    assert!(
        err.contains("1 tensor(s) of another shape (regression.weight: 1x64 in the file, 1x128 in the model)"),
        "{err}"
    );

    // Not a safetensors file: words, not the parser's debug name.
    std::fs::write(&wfile, b"x").unwrap();
    let err = common::load_refusal(&run);
    assert!(err.contains("not a readable safetensors file"), "{err}");
    assert!(!err.contains("HeaderTooSmall"), "{err}");
}

#[test]
fn the_expected_set_follows_run_json() {
    // run.json says the backbone is in the weights (a fine-tuned run) while the file holds the
    // heads only: every backbone tensor is missing (it would otherwise stay random).
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path());
    let info = std::fs::read_to_string(run.join("run.json")).unwrap();
    assert!(info.contains("\"backbone_in_weights\": false"));
    std::fs::write(
        run.join("run.json"),
        info.replace(
            "\"backbone_in_weights\": false",
            "\"backbone_in_weights\": true",
        ),
    )
    .unwrap();
    let err = common::load_refusal(&run);
    assert!(
        err.contains("run.json says they hold the heads and the backbone"),
        "{err}"
    );
    assert!(err.contains("missing tensor(s) (backbone."), "{err}");
}

/// The backbone variables of a VarStore as `.pth` entries (names without `backbone.`).
fn backbone_entries(vs: &nn::VarStore) -> Vec<(String, Vec<usize>, common::TensorData)> {
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.into_iter()
        .filter_map(|(name, t)| {
            let n = name
                .strip_prefix(&format!("{BACKBONE_PREFIX}."))?
                .to_string();
            let shape = t.size().iter().map(|&d| d as usize).collect();
            let v = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap();
            Some((n, shape, common::TensorData::F32(v)))
        })
        .collect()
}

fn pth_err(vs: &nn::VarStore, file: &Path) -> String {
    format!(
        "{:#}",
        weights::load_pth(vs, BACKBONE_PREFIX, file, &[]).unwrap_err()
    )
}

#[test]
fn a_pth_backbone_must_hold_exactly_its_tensors_for_every_model() {
    let tmp = tempfile::tempdir().unwrap();
    tch::manual_seed(3);
    let src = nn::VarStore::new(Device::Cpu);
    let _ = LinearityIqa::new(&src, ModelConfig::default());
    let entries = backbone_entries(&src);
    let n = entries.len();
    let file = tmp.path().join("lite0.pth");

    // The distillation's plain regressor and LinearityIQA read the same backbone file.
    tch::manual_seed(4);
    let plain_vs = nn::VarStore::new(Device::Cpu);
    let _plain = PlainIqa::new(&plain_vs, ModelConfig::default());
    let lin_vs = nn::VarStore::new(Device::Cpu);
    let _lin = LinearityIqa::new(&lin_vs, ModelConfig::default());

    common::write_torch_zip(&file, &[]);
    for vs in [&plain_vs, &lin_vs] {
        let err = pth_err(vs, &file);
        assert!(err.contains("lite0.pth"), "{err}");
        assert!(err.contains(&format!("{n} missing tensor(s)")), "{err}");
        assert!(err.contains(&format!("and {} more", n - 5)), "{err}");
        assert!(err.contains("another backbone"), "{err}");
    }

    let mut partial: Vec<_> = backbone_entries(&src);
    let dropped = partial.remove(7).0;
    common::write_torch_zip(&file, &partial);
    let err = pth_err(&plain_vs, &file);
    assert!(
        err.contains(&format!("1 missing tensor(s) ({dropped})")),
        "{err}"
    );

    let mut extra = backbone_entries(&src);
    extra.push((
        "head.weight".into(),
        vec![2],
        common::TensorData::F32(vec![1.0, 2.0]),
    ));
    common::write_torch_zip(&file, &extra);
    let err = pth_err(&plain_vs, &file);
    assert!(
        err.contains("1 unexpected tensor(s) (head.weight)"),
        "{err}"
    );

    let mut shaped = backbone_entries(&src);
    let (name, shape, _) = &shaped[0];
    let (name, mut shape) = (name.clone(), shape.clone());
    shape[0] += 1;
    let numel = shape.iter().product();
    shaped[0] = (
        name.clone(),
        shape,
        common::TensorData::F32(vec![0.0; numel]),
    );
    common::write_torch_zip(&file, &shaped);
    let err = pth_err(&plain_vs, &file);
    assert!(
        err.contains(&format!("1 tensor(s) of another shape ({name}: ")),
        "{err}"
    );

    // Complete: every backbone tensor of the plain regressor now equals the file's.
    common::write_torch_zip(&file, &entries);
    assert_eq!(
        weights::load_pth(&plain_vs, BACKBONE_PREFIX, &file, &[]).unwrap(),
        n
    );
    let (a, b) = (src.variables(), plain_vs.variables());
    for (k, v) in a.iter().filter(|(k, _)| k.starts_with("backbone.")) {
        assert!(v.allclose(&b[k], 0.0, 0.0, false), "{k}");
    }
}

#[test]
fn a_pth_that_calls_os_system_is_reported_as_refused() {
    // {'x': os.system('echo pwned')} in a torch zip: was "245 missing tensors".
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("evil.pth");
    let pickle = b"\x80\x02}X\x01\x00\x00\x00xcos\nsystem\nX\x0a\x00\x00\x00echo pwned\x85Rs.";
    common::write_zip_pickle(&file, pickle);
    let vs = nn::VarStore::new(Device::Cpu);
    let _ = LinearityIqa::new(&vs, ModelConfig::default());
    let err = pth_err(&vs, &file);
    assert!(err.contains("evil.pth") && err.contains("refused"), "{err}");
    assert!(
        err.contains("os.system") && err.contains("never runs code"),
        "{err}"
    );
    assert!(!err.contains("missing"), "{err}");
}

/// A run whose weights hold a NaN is refused at load, naming the tensor (it printed NaN scores
/// with exit 0, and serve answered 200 with `"score": null`).
#[test]
fn a_model_with_non_finite_weights_is_refused_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path());
    let wfile = run.join("weights.safetensors");
    let mut t = read(&wfile);
    let w = t["regression.weight"].copy();
    let _ = w.get(0).get(3).fill_(f64::NAN);
    t.insert("regression.weight".into(), w);
    write(&wfile, &t);
    let err = common::load_refusal(&run);
    assert!(err.contains("1 tensor(s) hold NaN or infinite values (regression.weight)"), "{err}");
}

fn edit_run_json(run: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let file = run.join("run.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&file, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// `run.json` must agree with the network: one usable mapping per head (fewer panicked with an
/// index out of bounds; k = 0 scored every image alike).
#[test]
fn run_json_must_hold_one_finite_non_zero_mapping_per_head() {
    let tmp = tempfile::tempdir().unwrap();
    let run = copy_run(tmp.path());
    edit_run_json(&run, |v| {
        v["mapping"].as_array_mut().unwrap().pop();
    });
    let err = common::load_refusal(&run);
    assert!(err.contains("run.json: 2 mappings and 3 head names for a model with 3 heads"), "{err}");

    let run = copy_run(&tmp.path().join("k0"));
    edit_run_json(&run, |v| v["mapping"][2]["k"] = 0.0.into());
    let err = common::load_refusal(&run);
    assert!(err.contains("the mapping of head 'fused' is k = 0"), "{err}");

    let run = copy_run(&tmp.path().join("names"));
    edit_run_json(&run, |v| v["heads"] = serde_json::json!(["score"]));
    let err = common::load_refusal(&run);
    assert!(err.contains("1 head names for a model with 3 heads"), "{err}");
}

/// One seeded mutation of a text file: bytes flipped, cut, inserted or repeated, or a number
/// replaced by an extreme one (0, -1, 1e308, a huge integer).
fn mutate_text(src: &str, rng: &mut rand_chacha::ChaCha8Rng) -> (Vec<u8>, String) {
    use rand::Rng;
    let mut b = src.as_bytes().to_vec();
    let at = rng.gen_range(0..b.len());
    let what = match rng.gen_range(0..5) {
        0 => {
            b[at] ^= 1 << rng.gen_range(0..8);
            format!("bit flip at {at}")
        }
        1 => {
            b.truncate(at);
            format!("cut at {at}")
        }
        2 => {
            let junk: Vec<u8> = (0..rng.gen_range(1..16)).map(|_| rng.gen_range(32..127)).collect();
            b.splice(at..at, junk);
            format!("junk at {at}")
        }
        3 => {
            let end = (at + rng.gen_range(1..200)).min(b.len());
            let piece = b[at..end].to_vec();
            b.splice(at..at, piece);
            format!("bytes {at}..{end} repeated")
        }
        _ => {
            let starts: Vec<usize> = (1..b.len())
                .filter(|&i| b[i].is_ascii_digit() && !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'.')
                .collect();
            let Some(&i) = starts.get(rng.gen_range(0..starts.len().max(1))) else {
                return (b, "no number".into());
            };
            let end = (i..b.len()).find(|&j| !(b[j].is_ascii_digit() || b[j] == b'.' || b[j] == b'e' || b[j] == b'-')).unwrap_or(b.len());
            let v = ["0", "-1", "1e308", "99999999999999999999", "0.0"][rng.gen_range(0..5)];
            b.splice(i..end, v.bytes());
            format!("number at {i} set to {v}")
        }
    };
    (b, what)
}

/// Mutated `run.json` and `ensemble.toml` files load or are refused with an error: never a
/// panic (a run.json with fewer mappings than heads panicked), never a hang. Each case runs on
/// its own thread under a time bound, and names its seed and mutation when it fails.
#[test]
fn fuzzed_run_json_and_ensemble_toml_are_loaded_or_refused_never_a_panic() {
    use rand::SeedableRng;
    let tmp = tempfile::tempdir().unwrap();
    let a = copy_run(&tmp.path().join("a"));
    let b = copy_run(&tmp.path().join("b"));
    let ens = tmp.path().join("ens");
    std::fs::create_dir_all(&ens).unwrap();
    let members = format!("description = \"two\"\nmembers = [\"{}\", \"{}\"]\n", a.display(), b.display());
    let run_json = std::fs::read_to_string(a.join("run.json")).unwrap();
    let cases = [("run.json", a.clone(), a.join("run.json"), run_json, 40u64), ("ensemble.toml", ens.clone(), ens.join("ensemble.toml"), members, 30)];
    let mut failures = Vec::new();
    for (seed, (name, dir, file, text, n)) in cases.into_iter().enumerate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(50 + seed as u64);
        for k in 0..n {
            let (bytes, what) = mutate_text(&text, &mut rng);
            std::fs::write(&file, &bytes).unwrap();
            let d = dir.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let r = std::panic::catch_unwind(|| TrainedModel::load(&d, Device::Cpu, None).map(|_| ()));
                let _ = tx.send(r.map(|r| r.map_err(|e| format!("{e:#}"))).map_err(|_| ()));
            });
            let label = format!("{name} (seed {}, case {k}: {what})", 50 + seed);
            match rx.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(Ok(_)) => {}
                Ok(Err(())) => failures.push(format!("panic: {label}")),
                Err(_) => failures.push(format!("no result within 60 s: {label}")),
            }
        }
        std::fs::write(&file, &text).unwrap();
    }
    assert!(failures.is_empty(), "{} failing case(s):\n{}", failures.len(), failures.join("\n"));
}
