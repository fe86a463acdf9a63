//! `./run install`'s script: the installed binary runs from another folder with an empty
//! environment, loads libtorch from PREFIX/lib/normiqa, finds the default model and the ImageNet
//! weights in PREFIX/share/normiqa, and scores like the binary in the checkout.

use std::path::Path;
use std::process::Command;

#[cfg(target_os = "linux")]
#[test]
fn installed_binary_scores_like_the_checkout_from_anywhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("prefix");
    let o = Command::new("bash")
        .arg(root.join("scripts/install.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_normiqa"), "--prefix"])
        .arg(&prefix)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "install failed: {log}");
    assert!(prefix.join("lib/normiqa/libtorch_cpu.so").exists(), "{log}");
    // The default is an ensemble: its folder, its three members beside it, their weights.
    for n in 0..3 {
        assert!(prefix.join(format!("share/normiqa/weights/efficientnet-lite{n}.pth")).exists(), "{log}");
        assert!(prefix.join(format!("share/normiqa/models/clive-efficientnet-lite{n}/run.json")).exists(), "{log}");
    }
    assert!(prefix.join("share/normiqa/models/clive-efficientnet-lite012/ensemble.toml").exists(), "{log}");

    let work = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&work).unwrap();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, 128]))
        .save(work.join("photo.png"))
        .unwrap();
    // fp32 on both sides: `auto` depends on the environment (ONEDNN_MAX_CPU_ISA, which the
    // cleared environment of the installed binary drops), and this test is about what it finds.
    let installed = Command::new(prefix.join("bin/normiqa"))
        .env_clear()
        .current_dir(&work)
        .args(["predict", "photo.png", "--device", "cpu", "--precision", "fp32"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&installed.stderr);
    assert!(installed.status.success(), "installed predict failed: {err}");
    let checkout = Command::new(env!("CARGO_BIN_EXE_normiqa"))
        .current_dir(&work)
        .args(["predict", "photo.png", "--device", "cpu", "--precision", "fp32"])
        .output()
        .unwrap();
    assert!(checkout.status.success(), "checkout predict failed: {}", String::from_utf8_lossy(&checkout.stderr));
    let scores = String::from_utf8(installed.stdout).unwrap();
    assert!(scores.starts_with("image,score\nphoto.png,"), "{scores}");
    assert_eq!(scores, String::from_utf8(checkout.stdout).unwrap());
}
