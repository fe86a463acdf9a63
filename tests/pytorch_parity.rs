//! normiqa's EfficientNet-Lite0, -Lite1 and -Lite2 against the PyTorch reference on identical
//! pixels.
//!
//! Expected values: `reference/features_clive_lite{0,1,2}.json`, written by
//! `reference/linearity_iqa.py --arch efficientnet-liteN --dump-features` (PyTorch 2.13, eval
//! mode, 500×500, PIL decode)
//! for two CLIVE images stored as lossless WebP, which both decoders read to the same pixels. The
//! test recomputes the pooled level-6/level-7 features and the ImageNet top-5 classes (the
//! weights' own `_fc` layer on the level-7 features) from the same weights file.

use std::path::PathBuf;

use normiqa::data::decode::decode_one;
use normiqa::model::{
    linearity::BACKBONE_PREFIX, weights, BackboneName, LinearityIqa, ModelConfig,
};
use normiqa::weights::read_pth;
use tch::{nn, Device, Kind, Tensor};

fn shared_clive() -> PathBuf {
    std::env::var_os("NORMIQA_SHARED_DATA")
        .map(|p| PathBuf::from(p).join("clive"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/clive"))
}

#[test]
fn lite0_features_and_imagenet_top5_match_pytorch() {
    features_and_top5_match(BackboneName::EfficientNetLite0, "features_clive_lite0.json");
}

#[test]
fn lite1_features_and_imagenet_top5_match_pytorch() {
    features_and_top5_match(BackboneName::EfficientNetLite1, "features_clive_lite1.json");
}

#[test]
fn lite2_features_and_imagenet_top5_match_pytorch() {
    features_and_top5_match(BackboneName::EfficientNetLite2, "features_clive_lite2.json");
}

fn features_and_top5_match(backbone: BackboneName, fixture: &str) {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("reference")
                .join(fixture),
        )
        .unwrap(),
    )
    .unwrap();
    let wfile = backbone
        .default_weights()
        .unwrap_or_else(|| panic!("{backbone} weights: run ./run setup"));
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        backbone,
        ..Default::default()
    };
    let m = LinearityIqa::new(&vs, cfg);
    weights::load_pth(&vs, BACKBONE_PREFIX, &wfile, m.backbone.ignored_weights()).unwrap();
    let sd = read_pth(&wfile).unwrap();
    let fc_w = weights::raw_to_tensor(sd.get("_fc.weight").unwrap());
    let fc_b = weights::raw_to_tensor(sd.get("_fc.bias").unwrap());

    for img in expected["images"].as_array().unwrap() {
        let name = img["name"].as_str().unwrap();
        let im = decode_one(
            &shared_clive().join("images").join(name),
            &[],
            &Default::default(),
        )
        .unwrap();
        let x = normiqa::batch::to_tensor(&[&im], Device::Cpu).unwrap();
        let (f6, f7) = tch::no_grad(|| m.features(&x, false));
        for (level, f) in [("level6", &f6), ("level7", &f7)] {
            let got: Vec<f64> =
                Vec::<f64>::try_from(f.flatten(0, -1).to_kind(Kind::Double)).unwrap();
            let want = &img[level];
            assert_eq!(got.len() as u64, want["dim"].as_u64().unwrap());
            for (g, w) in got.iter().zip(want["first8"].as_array().unwrap()) {
                let w = w.as_f64().unwrap();
                assert!(
                    (g - w).abs() < 2e-4 * (1.0 + w.abs()),
                    "{backbone} {name} {level}: {g} vs {w}"
                );
            }
            let sum: f64 = got.iter().sum();
            let wsum = want["sum"].as_f64().unwrap();
            assert!(
                (sum - wsum).abs() < 1e-3 * (1.0 + wsum.abs()),
                "{backbone} {name} {level} sum: {sum} vs {wsum}"
            );
        }
        let logits = f7.matmul(&fc_w.tr()) + &fc_b;
        let (_, idx) = logits.flatten(0, -1).topk(5, 0, true, true);
        let top5: Vec<i64> = Vec::<i64>::try_from(idx).unwrap();
        let want: Vec<i64> = img["top5_classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(top5, want, "{backbone} {name}: ImageNet top-5");
    }
}

#[test]
fn conv_input_normalisation_matches_torchvision() {
    // to_tensor + normalize on a 1×1 image with known values.
    let im = image::RgbImage::from_raw(1, 1, vec![255, 0, 128]).unwrap();
    let x = normiqa::batch::to_tensor(&[&im], Device::Cpu).unwrap();
    let v: Vec<f32> = Vec::<f32>::try_from(x.flatten(0, -1)).unwrap();
    let want = [
        (1.0 - 0.485) / 0.229,
        (0.0 - 0.456) / 0.224,
        (128.0 / 255.0 - 0.406) / 0.225,
    ];
    for (a, b) in v.iter().zip(want) {
        assert!((*a as f64 - b).abs() < 1e-6);
    }
    let _ = Tensor::zeros([1], (Kind::Float, Device::Cpu));
}
