//! `predict` at scale, as separate processes: folder walking (links, loops, each file once),
//! quoted globs, `--files-from`, `--shard` (fixed and from the Kubernetes / Slurm environment),
//! `--resume` after a kill, JSON lines, and never writing over an input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/clive-efficientnet-lite0")
}

/// `n` small distinct images `im00.png ...` in `dir`.
fn images(dir: &Path, n: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        image::RgbImage::from_fn(40 + 4 * (i % 3), 32, |x, y| {
            image::Rgb([(x * 3 + i * 23) as u8, (y * 5 + i * 7) as u8, (90 + i * 11) as u8])
        })
        .save(dir.join(format!("im{i:02}.png")))
        .unwrap();
    }
}

/// Runs `normiqa predict ARGS` in `cwd` with the shipped model on the CPU, plus `env`.
fn predict(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_normiqa"));
    c.current_dir(cwd)
        .arg("predict")
        .args(args)
        .args(["--model", model().to_str().unwrap(), "--device", "cpu"]);
    for k in [
        "JOB_COMPLETION_INDEX",
        "NORMIQA_SHARDS",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_STEP",
        "SLURM_ARRAY_TASK_COUNT",
    ] {
        c.env_remove(k);
    }
    c.envs(env.iter().copied()).output().unwrap()
}

fn ok(o: Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "predict failed: {err}");
    String::from_utf8(o.stdout).unwrap()
}

fn failed(o: Output) -> String {
    assert!(!o.status.success(), "predict should have failed");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// CSV rows (after the header) as image → score text; panics on an image listed twice.
fn rows(csv: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let (image, score) = line.split_once(',').unwrap();
        let old = out.insert(image.to_string(), score.to_string());
        assert!(old.is_none(), "{image} listed twice:\n{csv}");
    }
    out
}

#[cfg(unix)]
#[test]
fn folder_links_and_loops_give_each_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    images(&dir, 2);
    images(&dir.join("sub"), 1);
    // A folder loop, a link to a file, a link to a folder and a link to nothing.
    std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
    std::os::unix::fs::symlink("im00.png", dir.join("same.png")).unwrap();
    std::os::unix::fs::symlink("sub", dir.join("again")).unwrap();
    std::os::unix::fs::symlink("gone.png", dir.join("dangling.png")).unwrap();
    let out = ok(predict(tmp.path(), &["photos", "photos/im01.png", "./photos/im01.png"], &[]));
    let got: Vec<String> = rows(&out).into_keys().collect();
    // Each of the 3 files once, under its first name in sorted order.
    assert_eq!(got, ["photos/again/im00.png", "photos/im00.png", "photos/im01.png"], "{out}");
}

#[test]
fn quoted_globs_and_file_lists_are_expanded() {
    let tmp = tempfile::tempdir().unwrap();
    images(&tmp.path().join("a"), 3);
    images(&tmp.path().join("b"), 2);
    let out = ok(predict(tmp.path(), &["a/im0[01].png", "b/*.png"], &[]));
    let got: Vec<String> = rows(&out).into_keys().collect();
    assert_eq!(got, ["a/im00.png", "a/im01.png", "b/im00.png", "b/im01.png"]);
    let err = failed(predict(tmp.path(), &["c/*.png"], &[]));
    assert!(err.contains("'c/*.png' matches no file"), "{err}");

    std::fs::write(tmp.path().join("list.txt"), "a/im02.png\n\nb\n").unwrap();
    let out = ok(predict(tmp.path(), &["--files-from", "list.txt"], &[]));
    let got: Vec<String> = rows(&out).into_keys().collect();
    assert_eq!(got, ["a/im02.png", "b/im00.png", "b/im01.png"]);
    std::fs::write(tmp.path().join("list.txt"), "a/im02.png\na/nope.png\n").unwrap();
    let err = failed(predict(tmp.path(), &["--files-from", "list.txt"], &[]));
    assert!(err.contains("list.txt line 2") && err.contains("a/nope.png"), "{err}");
}

#[test]
fn shards_from_flags_and_schedulers_cover_every_image_once() {
    let tmp = tempfile::tempdir().unwrap();
    images(&tmp.path().join("photos"), 12);
    let whole = rows(&ok(predict(tmp.path(), &["photos"], &[])));
    assert_eq!(whole.len(), 12);
    // Three processes at once: --shard 0/3, a Kubernetes Indexed Job pod (index 1), a Slurm
    // array task (--array=1-3, task 3 = shard 2).
    let shard = |args: &'static [&'static str], env: &'static [(&'static str, &'static str)]| {
        let cwd = tmp.path().to_path_buf();
        std::thread::spawn(move || ok(predict(&cwd, args, env)))
    };
    let parts = [
        shard(&["photos", "--shard", "0/3"], &[]),
        shard(
            &["photos", "--shard", "auto"],
            &[("JOB_COMPLETION_INDEX", "1"), ("NORMIQA_SHARDS", "3")],
        ),
        shard(
            &["photos", "--shard", "auto"],
            &[
                ("SLURM_ARRAY_TASK_ID", "3"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_STEP", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
        ),
    ];
    let mut union = BTreeMap::new();
    for p in parts {
        let part = rows(&p.join().unwrap());
        assert!(part.len() < 12, "a shard scored everything");
        for (image, score) in part {
            assert!(union.insert(image.clone(), score).is_none(), "{image} in two shards");
        }
    }
    assert_eq!(union, whole);
    let err = failed(predict(tmp.path(), &["photos", "--shard", "auto"], &[("JOB_COMPLETION_INDEX", "1")]));
    assert!(err.contains("NORMIQA_SHARDS"), "{err}");
}

#[test]
fn a_killed_run_resumes_without_loss_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    images(&tmp.path().join("photos"), 6);
    for format in ["csv", "jsonl"] {
        let out = format!("scores.{format}");
        let args = ["photos", "--format", format, "--chunk", "2", "-o", &out];
        ok(predict(tmp.path(), &args, &[]));
        let full = std::fs::read_to_string(tmp.path().join(&out)).unwrap();
        // What a kill leaves: OUT.partial with some whole lines and one cut short.
        let lines: Vec<&str> = full.lines().collect();
        let cut = format!("{}\n{}", lines[..3].join("\n"), &lines[3][..lines[3].len() / 2]);
        std::fs::remove_file(tmp.path().join(&out)).unwrap();
        let partial = tmp.path().join(format!("{out}.partial"));
        std::fs::write(&partial, &cut).unwrap();
        // Without --resume the unfinished file is not thrown away.
        let err = failed(predict(tmp.path(), &args, &[]));
        assert!(err.contains("--resume"), "{err}");
        let mut again = args.to_vec();
        again.push("--resume");
        ok(predict(tmp.path(), &again, &[]));
        assert!(!partial.exists());
        let resumed = std::fs::read_to_string(tmp.path().join(&out)).unwrap();
        let sorted = |t: &str| {
            let mut l: Vec<String> = t.lines().map(String::from).collect();
            l.sort();
            l
        };
        assert_eq!(sorted(&resumed), sorted(&full), "{format}");
        assert_eq!(resumed.lines().next(), full.lines().next());
        // A finished file: resume adds only new images.
        images(&tmp.path().join("photos/more"), 1);
        ok(predict(tmp.path(), &again, &[]));
        let grown = std::fs::read_to_string(tmp.path().join(&out)).unwrap();
        assert!(grown.starts_with(&resumed), "{grown}");
        assert_eq!(grown.lines().count(), full.lines().count() + 1);
        assert!(grown.lines().last().unwrap().contains("photos/more/im00.png"));
        std::fs::remove_dir_all(tmp.path().join("photos/more")).unwrap();
    }
}

#[test]
fn outputs_never_replace_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    images(&tmp.path().join("photos"), 2);
    let v = tmp.path().join("photos/im00.png");
    let before = std::fs::read(&v).unwrap();
    for (inputs, out) in [
        (&["photos/im00.png"][..], "photos/im00.png"),
        (&["photos"][..], "./photos/im00.png"),
        (&["photos/*.png"][..], "photos/im00.png"),
    ] {
        let mut args = inputs.to_vec();
        args.extend(["-o", out]);
        let err = failed(predict(tmp.path(), &args, &[]));
        assert!(err.contains("would write over the input image"), "{err}");
    }
    assert_eq!(std::fs::read(&v).unwrap(), before);
    std::fs::write(tmp.path().join("list.txt"), "photos/im01.png\n").unwrap();
    let err = failed(predict(tmp.path(), &["--files-from", "list.txt", "-o", "list.txt"], &[]));
    assert!(err.contains("--files-from list"), "{err}");
    let run_json = model().join("run.json");
    let err = failed(predict(tmp.path(), &["photos", "-o", run_json.to_str().unwrap()], &[]));
    assert!(err.contains("model file"), "{err}");
}

#[test]
fn test_refuses_to_write_predictions_over_its_labels() {
    let tmp = tempfile::tempdir().unwrap();
    images(&tmp.path().join("photos"), 4);
    let labels = tmp.path().join("l.csv");
    let text = "image,mos\nim00.png,50\nim01.png,60\nim02.png,40\nim03.png,70\n";
    std::fs::write(&labels, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_normiqa"))
        .current_dir(tmp.path())
        .args(["test", "--model", model().to_str().unwrap(), "--device", "cpu"])
        .args(["--dataset", "csv", "--labels", "l.csv", "--images", "photos"])
        .args(["--predictions", "./l.csv"])
        .output()
        .unwrap();
    let err = failed(o);
    // `--predictions` is the former name of test's `-o`.
    assert!(err.contains("-o ./l.csv") && err.contains("labels"), "{err}");
    assert_eq!(std::fs::read_to_string(&labels).unwrap(), text);
}

#[test]
fn synth_and_decode_refuse_outputs_over_their_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    images(&tmp.path().join("refs"), 1);
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_normiqa"))
            .current_dir(tmp.path())
            .args(args)
            .output()
            .unwrap();
        failed(o)
    };
    let err = run(&["synth", "--references", "refs", "--out", "."]);
    assert!(err.contains("reference folder refs"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path().join("refs")).unwrap().count(), 1);
    std::fs::write(tmp.path().join("refs/pixels.json"), "image,mos\nim00.png,50\n").unwrap();
    let err = run(&[
        "decode", "--dataset", "csv", "--labels", "refs/pixels.json", "--images", "refs",
        "--out", "refs",
    ]);
    assert!(err.contains("--out") && err.contains("pixels.json"), "{err}");
}

#[test]
fn several_workers_give_the_rows_of_one_worker_in_the_same_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("photos");
    images(&dir, 7);
    std::fs::write(dir.join("im03b.jpg"), b"\xff\xd8\xff not a jpeg").unwrap();
    let run = |workers: &str, chunk: &str| {
        let o = predict(
            tmp.path(),
            &["photos", "--precision", "fp32", "--workers", workers, "--chunk", chunk],
            &[],
        );
        let err = failed(o.clone());
        assert!(err.contains("im03b.jpg") && err.contains("1 image(s) could not be scored"), "{err}");
        String::from_utf8(o.stdout).unwrap()
    };
    let one = run("1", "64");
    let three = run("3", "2");
    let names = |csv: &str| csv.lines().map(|l| l.split(',').next().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&one), names(&three), "rows in the order of the sorted file list");
    assert_eq!(names(&one).len(), 8, "header + the 7 readable images:\n{one}");
    for (a, b) in rows(&one).values().zip(rows(&three).values()) {
        let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
        assert!((a - b).abs() < 1e-3, "{a} vs {b}");
    }
}
