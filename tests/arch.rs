//! DBCNN (with S-CNN), HyperIQA and the plain regressor: shapes, a forward pass against PyTorch
//! implementations written from the reference code, inference paths, parameter groups, crops,
//! and loading torchvision-named `.pth` files.
//!
//! Expected values: `reference/arch_parity.json`, written by `reference/arch_parity.py` (PyTorch
//! 2.13; the copies there were checked against pyiqa 0.1.16's own modules). Both sides fill every
//! parameter, buffer and the input from one formula keyed by normiqa's variable name ([`fill`]),
//! so no weights are shipped.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use normiqa::model::dbcnn::{bilinear_pool, Dbcnn, DbcnnConfig, SCNN_PREFIX};
use normiqa::model::hyperiqa::{grid_crops, random_crops, HyperIqa, HyperIqaConfig, CROP};
use normiqa::model::linearity::{BACKBONE_GROUP, BACKBONE_PREFIX, HEADS_GROUP};
use normiqa::model::{IqaModel, ModelConfig, PlainIqa};
use normiqa::model::scnn::{Scnn, AUTHORS_CLASSES};
use normiqa::model::{weights, BackboneName};
use rand::SeedableRng;
use serde_json::Value;
use tch::{nn, Device, Kind, Tensor};

// ---------------------------------------------------------------------------------------------
// The fill formula of reference/arch_parity.py.

fn fnv1a32(s: &str) -> u64 {
    s.bytes().fold(0x811C9DC5u64, |h, b| {
        ((h ^ b as u64) * 0x01000193) & 0xFFFF_FFFF
    })
}

/// Value `i` of the integer hash of (index, k), in [−1, 1).
fn uniform(i: u64, k: u64) -> f64 {
    const M: u64 = 0xFFFF_FFFF;
    let mut x = (i * 2654435761 + k * 40503 + 12345) & M;
    x ^= x >> 15;
    x = (x * 2246822519) & M;
    x ^= x >> 13;
    x = (x * 3266489917) & M;
    x ^= x >> 16;
    x as f64 / 4294967296.0 * 2.0 - 1.0
}

fn fill(name: &str, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let k = fnv1a32(name);
    let fan_in = if shape.len() > 1 { n / shape[0] } else { 1 };
    let v: Vec<f32> = (0..n as u64)
        .map(|i| {
            let u = uniform(i, k);
            let v = if name.ends_with("running_var") {
                1.0 + 0.5 * u
            } else if name.ends_with("running_mean") {
                0.1 * u
            } else if name.ends_with("bias") {
                0.05 * u
            } else if shape.len() == 1 {
                1.0 + 0.2 * u
            } else if name == "input" {
                1.5 * u
            } else {
                (6.0 / fan_in as f64).sqrt() * u
            };
            v as f32
        })
        .collect();
    Tensor::from_slice(&v).reshape(shape)
}

/// Fills every variable by the formula, in the variable's own kind.
fn fill_vars(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            t.copy_(&fill(&name, &t.size()));
        }
    });
}

/// Casts every variable to float64 and fills it by the formula (fp32 values, held exactly in
/// float64), as `reference/arch_parity.py` does with `torch.set_default_dtype(torch.float64)`.
fn fill_vs(vs: &mut nn::VarStore) {
    vs.double();
    fill_vars(vs);
}

/// The formula's input, in float64 (see [`fill_vs`]).
fn input(shape: &[i64]) -> Tensor {
    fill("input", shape).to_kind(Kind::Double)
}

// ---------------------------------------------------------------------------------------------
// Comparison with the expected values.

fn expected(case: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference/arch_parity.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    all["cases"][case].clone()
}

/// Relative tolerance of the comparisons. Both sides compute in float64, so the check is about
/// the architecture, not about the CPU's kernels: fp32 kernels accumulate in another order on
/// AVX2 than on AVX-512, and in fp32 the train-mode HyperIQA target weights moved by 1e-3
/// relative between the two (BatchNorm over a batch of 2 amplifies rounding ~1e4-fold: 6e-8
/// per operation became 1e-3). float64 rounds at 1.1e-16 per operation; the same amplification
/// and summation over ~1e5 values gives ~1e-11, and 1e-9 leaves a margin of 100 over that
/// while any wrong layer, order or constant moves the values by far more than 1e-6.
const TOL: f64 = 1e-9;

fn floats(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.detach().flatten(0, -1).to_kind(Kind::Double)).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Compares a tensor with a summary (shape, first values, sum, |sum|, cosine probe), each within
/// TOL relative to the tensor's scale.
fn check_summary(what: &str, t: &Tensor, want: &Value) {
    assert_eq!(t.size(), i64s(&want["shape"]), "{what}: shape");
    let got = floats(t);
    let abs_sum = want["abs_sum"].as_f64().unwrap();
    let scale = abs_sum / got.len() as f64;
    for (i, (g, w)) in got.iter().zip(f64s(&want["first"])).enumerate() {
        assert!(
            (g - w).abs() <= TOL * (w.abs() + scale),
            "{what}[{i}]: {g} vs {w}"
        );
    }
    let probe: f64 = got
        .iter()
        .enumerate()
        .map(|(i, v)| v * (0.1 * i as f64).cos())
        .sum();
    let sum: f64 = got.iter().sum();
    let abs: f64 = got.iter().map(|v| v.abs()).sum();
    for (name, g, w) in [
        ("sum", sum, want["sum"].as_f64().unwrap()),
        ("abs sum", abs, abs_sum),
        ("probe", probe, want["probe"].as_f64().unwrap()),
    ] {
        assert!((g - w).abs() <= TOL * abs_sum, "{what} {name}: {g} vs {w}");
    }
}

fn check_values(what: &str, t: &Tensor, want: &Value) {
    let got = floats(t);
    let want = f64s(want);
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().map(|w| w.abs()).sum::<f64>() / want.len() as f64;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= TOL * (w.abs() + scale),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Parity with the reference implementations.

#[test]
fn fill_formula_is_the_reference_one() {
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference/arch_parity.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let want = &all["fill_check"];
    let name = want["name"].as_str().unwrap();
    assert_eq!(fnv1a32(name), want["fnv1a32"].as_u64().unwrap());
    let t = fill(name, &i64s(&want["shape"]));
    let got = floats(&t);
    for (g, w) in got.iter().zip(f64s(&want["first"])) {
        assert_eq!(*g as f32, w as f32, "{name}");
    }
}

#[test]
fn scnn_matches_reference() {
    let want = expected("scnn");
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = Scnn::new(&vs.root(), AUTHORS_CLASSES);
    fill_vs(&mut vs);
    let x = input(&i64s(&want["input"]));
    let eval = tch::no_grad(|| m.forward(&x, false));
    check_summary("S-CNN eval logits", &eval, &want["logits_eval"]);
    let train = tch::no_grad(|| m.forward(&x, true));
    check_summary("S-CNN train logits", &train, &want["logits_train"]);
}

fn dbcnn_case(case: &str, fcnn: BackboneName) {
    let want = expected(case);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = Dbcnn::new(
        &vs,
        DbcnnConfig {
            fcnn,
            ..Default::default()
        },
    );
    fill_vs(&mut vs);
    let x = input(&i64s(&want["input"]));
    tch::no_grad(|| {
        assert_eq!(m.fcnn.last_map(&x, false).size(), i64s(&want["fcnn_map"]));
        assert_eq!(m.scnn.forward(&x, false).size(), i64s(&want["scnn_map"]));
        let d = m.features(&x, false);
        assert_eq!(d.size()[1], m.feature_len());
        check_summary(&format!("{case} descriptor"), &d, &want["descriptor"]);
        check_values(&format!("{case} score"), &m.head(&d), &want["score"]);
        // The inference path (folded S-CNN, folded Lite0) gives the same scores.
        let fast = m.inference().forward(&x);
        check_values(&format!("{case} inference score"), &fast, &want["score"]);
    });
}

#[test]
fn dbcnn_vgg16_matches_reference() {
    dbcnn_case("dbcnn_vgg16", BackboneName::Vgg16);
}

#[test]
fn dbcnn_lite0_stand_in_matches_reference() {
    dbcnn_case("dbcnn_lite0", BackboneName::EfficientNetLite0);
}

fn hyper_case(case: &str, backbone: BackboneName) {
    let want = expected(case);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = HyperIqa::new(
        &vs,
        HyperIqaConfig {
            backbone,
            ..Default::default()
        },
    )
    .unwrap();
    fill_vs(&mut vs);
    let x = input(&i64s(&want["input"]));
    let train = want["train"].as_bool().unwrap();
    tch::no_grad(|| {
        let (v, net) = m.target(&x, train).unwrap();
        check_summary(&format!("{case} LDA vector"), &v, &want["lda"]);
        check_summary(
            &format!("{case} target W1"),
            &net.weights[0],
            &want["target_w1"],
        );
        check_summary(
            &format!("{case} target W5"),
            &net.weights[4],
            &want["target_w5"],
        );
        check_summary(
            &format!("{case} target b1"),
            &net.biases[0],
            &want["target_b1"],
        );
        check_values(&format!("{case} score"), &net.forward(&v), &want["score"]);
        if !train {
            let fast = m.inference().forward(&x).unwrap();
            check_values(&format!("{case} inference score"), &fast, &want["score"]);
        }
    });
}

#[test]
fn hyperiqa_resnet50_matches_reference() {
    hyper_case("hyperiqa_resnet50", BackboneName::ResNet50);
    hyper_case("hyperiqa_resnet50_train", BackboneName::ResNet50);
}

#[test]
fn hyperiqa_lite0_stand_in_matches_reference() {
    hyper_case("hyperiqa_lite0", BackboneName::EfficientNetLite0);
}

#[test]
fn resnet50_regressor_matches_reference() {
    let want = expected("regressor_resnet50");
    let mut vs = nn::VarStore::new(Device::Cpu);
    let m = PlainIqa::new(&vs, resnet50_regressor());
    fill_vs(&mut vs);
    let x = input(&i64s(&want["input"]));
    let y = tch::no_grad(|| m.outputs(&x, false, false).remove(0));
    check_values("regressor score", &y, &want["score"]);
    check_values(
        "regressor inference",
        &m.eval_path().outputs(&x).unwrap().remove(0),
        &want["score"],
    );
}

// ---------------------------------------------------------------------------------------------
// Bilinear pooling, parameter groups, errors, crops.

#[test]
fn bilinear_pool_by_hand() {
    // [1, 2, 2, 2] and [1, 3, 2, 2] maps: entry (i, j) = Σ_p a_i(p)·b_j(p) / 4, then √, then L2.
    let a = [[1.0, 2.0, 0.0, 3.0], [0.5, 0.0, 4.0, 1.0]];
    let b = [
        [1.0, 1.0, 1.0, 1.0],
        [0.0, 2.0, 0.0, 0.0],
        [3.0, 0.0, 1.0, 2.0],
    ];
    let ta = Tensor::from_slice(&a.concat()).reshape([1, 2, 2, 2]);
    let tb = Tensor::from_slice(&b.concat()).reshape([1, 3, 2, 2]);
    let mut want = Vec::new();
    for ai in &a {
        for bj in &b {
            let dot: f64 = ai.iter().zip(bj).map(|(x, y)| x * y).sum::<f64>() / 4.0;
            want.push((dot + 1e-8).sqrt());
        }
    }
    let norm = want.iter().map(|v| v * v).sum::<f64>().sqrt();
    let got = floats(&bilinear_pool(
        &ta.to_kind(Kind::Float),
        &tb.to_kind(Kind::Float),
    ));
    assert_eq!(got.len(), 6);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w / norm).abs() < 1e-6, "{g} vs {}", w / norm);
    }
    // A second map of another size is resized to the first's (aligned corners): a constant map
    // stays constant, so the descriptor equals the one of the same-size map.
    let c = Tensor::ones([1, 1, 3, 5], (Kind::Float, Device::Cpu));
    let same = bilinear_pool(&ta.to_kind(Kind::Float), &c.narrow(2, 0, 2).narrow(3, 0, 2));
    let resized = bilinear_pool(&ta.to_kind(Kind::Float), &c);
    assert!(same.allclose(&resized, 1e-6, 1e-7, false));
}

/// Variable names of each optimiser group.
fn groups(vs: &nn::VarStore) -> HashMap<usize, Vec<String>> {
    let by_ptr: HashMap<usize, String> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (t.data_ptr() as usize, n))
        .collect();
    let vars = vs.variables_.lock().unwrap();
    let mut out: HashMap<usize, Vec<String>> = HashMap::new();
    for v in &vars.trainable_variables {
        out.entry(v.group)
            .or_default()
            .push(by_ptr[&(v.tensor.data_ptr() as usize)].clone());
    }
    out
}

#[test]
fn parameter_groups_split_backbone_and_heads() {
    let vs = nn::VarStore::new(Device::Cpu);
    let _m = Dbcnn::new(&vs, DbcnnConfig::default());
    let g = groups(&vs);
    assert_eq!(g[&HEADS_GROUP].len(), 2, "DBCNN heads: fc.weight, fc.bias");
    assert!(g[&HEADS_GROUP].iter().all(|n| n.starts_with("fc.")));
    let stream = |n: &String| {
        n.starts_with(&format!("{BACKBONE_PREFIX}.")) || n.starts_with(&format!("{SCNN_PREFIX}."))
    };
    assert!(g[&BACKBONE_GROUP].iter().all(stream));
    // 13 VGG convolutions and 9 S-CNN convolution+BatchNorm layers, weight and bias each.
    assert_eq!(g[&BACKBONE_GROUP].len(), 13 * 2 + 9 * 4);
    assert_eq!(
        vs.variables()["fc.weight"].size(),
        vec![1, 512 * 128],
        "VGG-16 DBCNN: 65,536 bilinear features"
    );

    let vs = nn::VarStore::new(Device::Cpu);
    let _m = HyperIqa::new(
        &vs,
        HyperIqaConfig {
            backbone: BackboneName::ResNet18,
            ..Default::default()
        },
    )
    .unwrap();
    let g = groups(&vs);
    assert!(g[&BACKBONE_GROUP]
        .iter()
        .all(|n| n.starts_with(&format!("{BACKBONE_PREFIX}."))));
    let heads = &g[&HEADS_GROUP];
    // 3 LDA convolutions, 4 LDA linears (weight, bias), conv1 (3 × 2), 4 weight convolutions,
    // fc5w, 5 bias linears (weight, bias each).
    assert_eq!(heads.len(), 3 + 4 * 2 + 3 * 2 + 4 * 2 + 2 + 5 * 2);
    for n in [
        "lda1_pool.0.weight",
        "lda4_fc.bias",
        "conv1.4.weight",
        "fc1w_conv.weight",
        "fc5w_fc.weight",
        "fc5b_fc.bias",
    ] {
        assert!(heads.iter().any(|h| h == n), "missing {n}");
    }
    assert_eq!(
        vs.variables()["fc1w_conv.weight"].size(),
        vec![512, 112, 3, 3]
    );
    assert_eq!(vs.variables()["lda1_fc.weight"].size(), vec![16, 16 * 64]);
    assert_eq!(vs.variables()["lda4_fc.weight"].size(), vec![176, 512]);

    let vs = nn::VarStore::new(Device::Cpu);
    let _m = PlainIqa::new(&vs, resnet50_regressor());
    let g = groups(&vs);
    assert_eq!(g[&HEADS_GROUP].len(), 2);
    assert_eq!(vs.variables()["fc.weight"].size(), vec![1, 2048]);
}

#[test]
fn hyperiqa_refuses_what_it_cannot_take() {
    let vs = nn::VarStore::new(Device::Cpu);
    let err = HyperIqa::new(
        &vs,
        HyperIqaConfig {
            backbone: BackboneName::Vgg16,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("'vgg16'") && err.contains("resnet50"), "{err}");

    let vs = nn::VarStore::new(Device::Cpu);
    let m = HyperIqa::new(
        &vs,
        HyperIqaConfig {
            backbone: BackboneName::ResNet18,
            ..Default::default()
        },
    )
    .unwrap();
    let x = Tensor::zeros([1, 3, 200, 240], (Kind::Float, Device::Cpu));
    let err = m.forward(&x, false).unwrap_err().to_string();
    assert!(err.contains("224x224") && err.contains("200x240"), "{err}");
    let err = m
        .forward_crops(&x, &[(0, 0)], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("smaller"), "{err}");
    let x = Tensor::zeros([1, 3, 230, 240], (Kind::Float, Device::Cpu));
    let err = m
        .forward_crops(&x, &[(7, 0)], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("top 7") && err.contains("230x240"), "{err}");
    assert!(m.forward_crops(&x, &[], false).is_err());
}

#[test]
fn crops_follow_the_reference_rules() {
    // pyiqa's uniform_crop on 512×384 with 25 crops: steps (512−224)//5 = 57 and (384−224)//5 = 32.
    let g = grid_crops(512, 384, 25).unwrap();
    assert_eq!(g.len(), 25);
    assert_eq!(g[0], (0, 0));
    assert_eq!(g[1], (0, 32));
    assert_eq!(g[5], (57, 0));
    assert_eq!(g[24], (4 * 57, 4 * 32));
    // 10 crops: a 4×4 grid with steps of ⌊√10⌋ = 3 parts, the first 10 positions.
    let g = grid_crops(300, 300, 10).unwrap();
    assert_eq!(g.len(), 10);
    assert_eq!(g[4], (25, 0));
    assert_eq!(g[3], (0, 75));
    assert!(grid_crops(200, 300, 4).is_err());

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let r = random_crops(300, 260, 50, &mut rng).unwrap();
    assert!(r
        .iter()
        .all(|&(t, l)| (0..=76).contains(&t) && (0..=36).contains(&l)));
    assert!(r.iter().any(|&(t, _)| t != r[0].0), "crops vary");
    let mut rng2 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    assert_eq!(
        r,
        random_crops(300, 260, 50, &mut rng2).unwrap(),
        "one seed, one set"
    );
    assert!(random_crops(223, 400, 1, &mut rng2).is_err());
}

#[test]
fn hyperiqa_test_score_is_the_mean_over_crops() {
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = HyperIqa::new(
        &vs,
        HyperIqaConfig {
            backbone: BackboneName::ResNet18,
            ..Default::default()
        },
    )
    .unwrap();
    let x = Tensor::randn([2, 3, 240, 250], (Kind::Float, Device::Cpu));
    let offsets = [(0, 0), (16, 26), (5, 9)];
    let inf = m.inference();
    let mean = inf.forward_crops(&x, &offsets).unwrap();
    assert_eq!(mean.size(), vec![2]);
    let each: Vec<Tensor> = offsets
        .iter()
        .map(|&(t, l)| {
            inf.forward(&x.narrow(2, t, CROP).narrow(3, l, CROP))
                .unwrap()
        })
        .collect();
    let want = Tensor::stack(&each, 0).mean_dim(0, false, Kind::Float);
    assert!(mean.allclose(&want, 1e-5, 1e-6, false), "{mean} vs {want}");
    // Different images, different scores (the crops are not mixed across the batch).
    let v = floats(&mean);
    assert!((v[0] - v[1]).abs() > 1e-7);
}

// ---------------------------------------------------------------------------------------------
// Loading published weights by name.

/// Writes the variables of `vs` under `prefix.` as a torch zip state dict, with `extra` entries
/// (a classifier the model does not use) and `num_batches_tracked` beside each BatchNorm.
fn export(
    vs: &nn::VarStore,
    prefix: &str,
    rename: impl Fn(&str) -> String,
    extra: &[&str],
    file: &std::path::Path,
) {
    let mut entries = Vec::new();
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        let Some(n) = name.strip_prefix(&format!("{prefix}.")) else {
            continue;
        };
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        entries.push((
            rename(n),
            shape,
            common::TensorData::F32(Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()),
        ));
        if n.ends_with("running_var") {
            let nb = rename(&n.replace("running_var", "num_batches_tracked"));
            entries.push((nb, vec![], common::TensorData::I64(vec![3])));
        }
    }
    for e in extra {
        entries.push((
            e.to_string(),
            vec![2, 2],
            common::TensorData::F32(vec![0.5; 4]),
        ));
    }
    common::write_torch_zip(file, &entries);
}

fn assert_same_prefix(a: &nn::VarStore, b: &nn::VarStore, prefix: &str) -> usize {
    let (va, vb) = (a.variables(), b.variables());
    let mut n = 0;
    for (name, t) in va
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{prefix}.")))
    {
        assert!(t.equal(&vb[name]), "{name} differs after loading");
        n += 1;
    }
    n
}

#[test]
fn torchvision_vgg16_and_authors_scnn_load_into_dbcnn() {
    let tmp = tempfile::tempdir().unwrap();
    let src = nn::VarStore::new(Device::Cpu);
    let _ = Dbcnn::new(&src, DbcnnConfig::default());
    fill_vars(&src);
    // torchvision's vgg16 state dict: features.N.* and the classifier the F-CNN ignores.
    let vgg = tmp.path().join("vgg16.pth");
    export(
        &src,
        BACKBONE_PREFIX,
        |n| n.to_string(),
        &["classifier.0.weight", "classifier.6.bias"],
        &vgg,
    );
    // The authors' scnn.pkl: a DataParallel state dict (module.features.*, projection, classifier).
    let scnn = tmp.path().join("scnn.pkl");
    export(
        &src,
        SCNN_PREFIX,
        |n| format!("module.{n}"),
        &["module.projection.0.weight", "module.classifier.weight"],
        &scnn,
    );

    let dst = nn::VarStore::new(Device::Cpu);
    let m = Dbcnn::new(&dst, DbcnnConfig::default());
    let n = weights::load_pth(&dst, BACKBONE_PREFIX, &vgg, m.fcnn.ignored_weights()).unwrap();
    assert_eq!(n, 26);
    let n = weights::load_pth(&dst, SCNN_PREFIX, &scnn, &["projection.", "classifier."]).unwrap();
    assert_eq!(
        n,
        9 * 6,
        "9 layers: conv weight, bias, BN weight, bias, mean, var"
    );
    assert_eq!(assert_same_prefix(&src, &dst, BACKBONE_PREFIX), 26);
    assert_eq!(assert_same_prefix(&src, &dst, SCNN_PREFIX), 54);
}

#[test]
fn torchvision_resnet50_loads_into_hyperiqa_and_the_regressor() {
    let tmp = tempfile::tempdir().unwrap();
    let src = nn::VarStore::new(Device::Cpu);
    let _ = PlainIqa::new(&src, resnet50_regressor());
    fill_vars(&src);
    let file = tmp.path().join("resnet50.pth");
    export(
        &src,
        BACKBONE_PREFIX,
        |n| n.to_string(),
        &["fc.weight", "fc.bias"],
        &file,
    );

    let dst = nn::VarStore::new(Device::Cpu);
    let m = HyperIqa::new(&dst, HyperIqaConfig::default()).unwrap();
    let n = weights::load_pth(&dst, BACKBONE_PREFIX, &file, m.backbone.ignored_weights()).unwrap();
    assert_eq!(n, assert_same_prefix(&src, &dst, BACKBONE_PREFIX));
    assert_eq!(
        n,
        53 + 53 * 4,
        "53 conv weights and 53 BatchNorms (4 tensors each)"
    );

    let dst = nn::VarStore::new(Device::Cpu);
    let m = PlainIqa::new(&dst, resnet50_regressor());
    weights::load_pth(&dst, BACKBONE_PREFIX, &file, m.backbone.ignored_weights()).unwrap();
    assert_same_prefix(&src, &dst, BACKBONE_PREFIX);
}

#[test]
fn efficientnet_lite0_weights_load_into_every_stand_in() {
    let file = BackboneName::EfficientNetLite0
        .default_weights()
        .expect("EfficientNet-Lite0 weights: run ./run setup");
    let lite = BackboneName::EfficientNetLite0;
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Dbcnn::new(
        &vs,
        DbcnnConfig {
            fcnn: lite,
            ..Default::default()
        },
    );
    weights::load_pth(&vs, BACKBONE_PREFIX, &file, m.fcnn.ignored_weights()).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let m = HyperIqa::new(
        &vs,
        HyperIqaConfig {
            backbone: lite,
            ..Default::default()
        },
    )
    .unwrap();
    weights::load_pth(&vs, BACKBONE_PREFIX, &file, m.backbone.ignored_weights()).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let m = PlainIqa::new(
        &vs,
        ModelConfig {
            backbone: lite,
            ..Default::default()
        },
    );
    weights::load_pth(&vs, BACKBONE_PREFIX, &file, m.backbone.ignored_weights()).unwrap();
}

/// The MRKD paper's ResNet-50 regressor: the plain model on ResNet-50.
fn resnet50_regressor() -> ModelConfig {
    ModelConfig {
        backbone: BackboneName::ResNet50,
        ..Default::default()
    }
}
