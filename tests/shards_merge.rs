//! The record of `predict -o` files and what it guards (issues 25 and 26): a resume of another
//! model, options or spelling of the inputs, a shard task that disagrees with the files of its
//! job (the `sbatch --array=2` case), and `normiqa merge` of a job's shards into one file equal
//! to one `predict`; rows reach `OUT.partial` while a run goes on.

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

const SCHEDULER_VARS: [&str; 8] = [
    "JOB_COMPLETION_INDEX",
    "NORMIQA_SHARDS",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_COUNT",
    "NORMIQA_MODEL",
];

fn normiqa(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_normiqa"));
    c.current_dir(cwd);
    for k in SCHEDULER_VARS {
        c.env_remove(k);
    }
    c
}

/// `normiqa predict ARGS` in `cwd` with the Lite0 model on the CPU in fp32, plus `env`.
fn predict(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = normiqa(cwd);
    c.arg("predict")
        .args(args)
        .args(["--model", model().to_str().unwrap(), "--device", "cpu", "--precision", "fp32"]);
    c.envs(env.iter().copied()).output().unwrap()
}

fn merge(cwd: &Path, args: &[&str]) -> Output {
    normiqa(cwd).arg("merge").args(args).output().unwrap()
}

fn ok(o: Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "normiqa failed: {err}");
    String::from_utf8(o.stdout).unwrap()
}

fn failed(o: Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "normiqa should have failed: {err}");
    err
}

/// The environment of task `id` of a Slurm array `min..=max` of `count` tasks.
fn slurm(id: &str, min: &str, max: &str, count: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SLURM_ARRAY_TASK_ID", id.to_string()),
        ("SLURM_ARRAY_TASK_MIN", min.to_string()),
        ("SLURM_ARRAY_TASK_MAX", max.to_string()),
        ("SLURM_ARRAY_TASK_STEP", "1".to_string()),
        ("SLURM_ARRAY_TASK_COUNT", count.to_string()),
    ]
}

/// A shard task as docs/cluster/slurm-array.sh runs it: `--shard auto --resume -o out/scores-ID.csv`.
fn task(cwd: &Path, env: &[(&'static str, String)]) -> Output {
    let id = &env.iter().find(|(k, _)| *k == "SLURM_ARRAY_TASK_ID").unwrap().1;
    let out = format!("out/scores-{id}.csv");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    predict(cwd, &["photos", "--shard", "auto", "--resume", "-o", &out], &env)
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// Issue 25: `sbatch --array=2` re-runs task 2 as an array of one task (shard 0/1); into the
/// job's folder it scored every photo again (exit 0), and the merge listed photos twice.
#[test]
fn a_task_resubmitted_alone_is_refused_naming_both_shards() {
    let tmp = tempfile::tempdir().unwrap();
    images(&tmp.path().join("photos"), 12);
    std::fs::create_dir(tmp.path().join("out")).unwrap();
    for id in ["0", "1", "3"] {
        ok(task(tmp.path(), &slurm(id, "0", "3", "4")));
    }
    // Task 2 failed before it wrote anything; re-submitted alone it sees an array of one.
    let alone = slurm("2", "2", "2", "1");
    let err = failed(task(tmp.path(), &alone));
    assert!(err.contains("out/scores-0.csv holds shard 0/4") && err.contains("this run is shard 0/1"), "{err}");
    assert!(err.contains("NORMIQA_SHARDS=4"), "{err}");
    assert!(!tmp.path().join("out/scores-2.csv").exists() && !tmp.path().join("out/scores-2.csv.partial").exists());
    // Task 2 killed after some rows: its own file says 2/4.
    let mut given = alone.clone();
    given.push(("NORMIQA_SHARDS", "4".to_string()));
    ok(task(tmp.path(), &given));
    let full = read(tmp.path().join("out/scores-2.csv"));
    let lines: Vec<&str> = full.lines().collect();
    assert!(lines.len() >= 4, "shard 2 holds at least 2 of the 12 photos:\n{full}");
    std::fs::rename(tmp.path().join("out/scores-2.csv"), tmp.path().join("out/scores-2.csv.partial")).unwrap();
    std::fs::write(tmp.path().join("out/scores-2.csv.partial"), lines[..3].join("\n") + "\n").unwrap();
    let err = failed(task(tmp.path(), &alone));
    assert!(err.contains("holds shard 0/4") && err.contains("this run is shard 0/1"), "{err}");
    assert_eq!(read(tmp.path().join("out/scores-2.csv.partial")), lines[..3].join("\n") + "\n");
    // With the job's shard count it resumes its own file, and the shards merge into one run.
    ok(task(tmp.path(), &given));
    assert_eq!(read(tmp.path().join("out/scores-2.csv")), full);
    ok(merge(tmp.path(), &["out", "-o", "all.csv"]));
    ok(predict(tmp.path(), &["photos", "-o", "one.csv"], &[]));
    assert_eq!(read(tmp.path().join("all.csv")), read(tmp.path().join("one.csv")));
    // A second job of another size in the same folder is refused by its first task.
    let err = failed(predict(tmp.path(), &["photos", "--shard", "1/3", "-o", "out/other-1.csv"], &[]));
    assert!(err.contains("holds shard") && err.contains("of a job of 4 shards") && err.contains("shard 1/3"), "{err}");
    // The same shard under another name, and a shard of other options.
    let err = failed(predict(tmp.path(), &["photos", "--shard", "1/4", "-o", "out/again-1.csv"], &[]));
    assert!(err.contains("shard 1/4 is already written to out/scores-1.csv"), "{err}");
    let err = failed(predict(tmp.path(), &["photos", "--shard", "2/4", "--tta", "flip", "-o", "out/x.csv"], &[]));
    assert!(err.contains("--tta") && err.contains("every shard of a job needs the same model and options"), "{err}");
}

/// `normiqa merge`: every shard there, finished, of one job and one model; the result is one
/// `predict` over all photos, byte for byte, in every format.
#[test]
fn merge_equals_one_predict_and_refuses_missing_unfinished_and_mixed_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    images(&t.join("photos"), 10);
    for format in ["csv", "jsonl", "json"] {
        let dir = format!("out-{format}");
        std::fs::create_dir(t.join(&dir)).unwrap();
        for i in 0..3 {
            let (shard, out) = (format!("{i}/3"), format!("{dir}/part-{i}.{format}"));
            ok(predict(t, &["photos", "--shard", &shard, "--format", format, "-o", &out], &[]));
        }
        std::fs::write(t.join(&dir).join("task.log"), "a log beside the shards\n").unwrap();
        let all = format!("all.{format}");
        ok(merge(t, &[&dir, "-o", &all]));
        let one = format!("one.{format}");
        ok(predict(t, &["photos", "--format", format, "-o", &one], &[]));
        assert_eq!(read(t.join(&all)), read(t.join(&one)), "{format}");
    }
    // Into another format: the same rows as predict writes them.
    ok(merge(t, &["out-jsonl", "-o", "from-jsonl.csv", "--format", "csv"]));
    assert_eq!(read(t.join("from-jsonl.csv")), read(t.join("one.csv")));

    let out = t.join("out-csv");
    let keep = t.join("keep");
    std::fs::create_dir(&keep).unwrap();
    let fails = |what: &str| failed(merge(t, &["out-csv", "-o", "m.csv"])).contains(what);
    std::fs::rename(out.join("part-1.csv"), keep.join("part-1.csv")).unwrap();
    assert!(fails("shard(s) 1/3 missing in out-csv"));
    std::fs::copy(keep.join("part-1.csv"), out.join("part-1.csv.partial")).unwrap();
    assert!(fails("unfinished shard(s): out-csv/part-1.csv.partial (shard 1/3)"));
    std::fs::rename(out.join("part-1.csv.partial"), out.join("part-1.csv")).unwrap();
    std::fs::copy(out.join("part-1.csv"), out.join("part-1-again.csv")).unwrap();
    assert!(fails("shard 1/3 is in both"));
    std::fs::remove_file(out.join("part-1-again.csv")).unwrap();
    // Shards of other options, and of another job, copied in.
    for (dir, args) in [("flip", &["--shard", "2/3", "--tta", "flip"]), ("five", &["--shard", "2/5", "--tta", "none"])] {
        std::fs::create_dir(t.join(dir)).unwrap();
        let o = format!("{dir}/part-2.csv");
        let mut a = vec!["photos", "-o", &o];
        a.extend_from_slice(args);
        ok(predict(t, &a, &[]));
    }
    std::fs::rename(out.join("part-2.csv"), keep.join("part-2.csv")).unwrap();
    std::fs::copy(t.join("flip/part-2.csv"), out.join("part-2.csv")).unwrap();
    assert!(fails("were scored with other models or options: --tta"));
    std::fs::copy(t.join("five/part-2.csv"), out.join("part-2.csv")).unwrap();
    assert!(fails("the shards of two jobs"));
    std::fs::rename(keep.join("part-2.csv"), out.join("part-2.csv")).unwrap();
    // A row edited into a shard: a photo of another shard, a score that is no number.
    let good = read(out.join("part-0.csv"));
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    let foreign = read(out.join("part-1.csv")).lines().nth(2).unwrap().to_string();
    lines.push(foreign.clone());
    std::fs::write(out.join("part-0.csv"), lines.join("\n") + "\n").unwrap();
    let image = foreign.split(',').next().unwrap();
    assert!(fails("is not an image of shard 0/3") && fails(image));
    lines.pop();
    lines.push("photos/new.png,nan".into());
    std::fs::write(out.join("part-0.csv"), lines.join("\n") + "\n").unwrap();
    assert!(fails(&format!("out-csv/part-0.csv line {}: score is NaN", lines.len())));
    std::fs::write(out.join("part-0.csv"), good).unwrap();
    ok(merge(t, &["out-csv", "-o", "m.csv"]));
    // Never over a shard, and a file without a record is no shard.
    assert!(failed(merge(t, &["out-csv", "-o", "out-csv/../out-csv/part-0.csv"])).contains("would write over the shard file"));
    assert_eq!(read(t.join("m.csv")), read(t.join("one.csv")));
}

/// Issue 26: a resume kept rows of another `--tta`, and scored again (twice in the file) the
/// images whose inputs were spelled another way.
#[test]
fn resume_refuses_other_options_and_inputs_spelled_another_way() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    images(&t.join("photos"), 4);
    ok(predict(t, &["photos", "-o", "s.csv"], &[]));
    let full = read(t.join("s.csv"));
    let err = failed(predict(t, &["photos", "--tta", "flip", "--resume", "-o", "s.csv"], &[]));
    assert!(err.contains("s.csv was scored with other options than this run: --tta flip in this run, none in the file"), "{err}");
    assert!(full.starts_with("# {\"normiqa_predict\":{\"version\":1,"), "{full}");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("photos", t.join("pics")).unwrap();
        let err = failed(predict(t, &["pics", "--resume", "-o", "s.csv"], &[]));
        assert!(err.contains("s.csv line 3: photos/im00.png is an input of this run spelled differently now"), "{err}");
    }
    assert_eq!(read(t.join("s.csv")), full, "a refused resume leaves the file as it was");
    assert!(!t.join("s.csv.partial").exists(), "and no copy of it");
    let lines: Vec<&str> = full.lines().collect();
    let empty = format!("{}\n{}\nphotos/im01.png,\n", lines[0], lines[1]);
    std::fs::write(t.join("s.csv.partial"), &empty).unwrap();
    let err = failed(predict(t, &["photos", "--resume", "-o", "s.csv"], &[]));
    assert!(err.contains("s.csv.partial line 3: score '' is not a number"), "{err}");
    // metrics reads a file with the record (the record line is no row).
    let with_mos: Vec<String> = std::iter::once(lines[0].to_string())
        .chain(std::iter::once("image,score,mos".to_string()))
        .chain(lines[2..].iter().enumerate().map(|(i, l)| format!("{l},{}", 10 * i + 5)))
        .collect();
    std::fs::write(t.join("m.csv"), with_mos.join("\n") + "\n").unwrap();
    let o = normiqa(t).args(["metrics", "m.csv", "--json"]).output().unwrap();
    let m: serde_json::Value = serde_json::from_str(&ok(o)).unwrap();
    assert_eq!(m["metrics"]["n"], 4, "{m}");
}

/// Issue 25: `.partial` was flushed once per 64 images, so a killed shard smaller than that kept
/// nothing. A FIFO among the inputs holds the run (its decoder waits for a writer) after the
/// images before it: their rows must be in `OUT.partial` then, and a resume scores the rest.
#[cfg(unix)]
#[test]
fn the_rows_scored_before_a_kill_are_kept_in_a_small_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    images(&t.join("photos"), 8);
    let fifo = t.join("photos/zz.png");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let mut c = normiqa(t);
    c.arg("predict")
        .args(["photos", "photos/zz.png", "--workers", "1", "-o", "s.csv"])
        .args(["--model", model().to_str().unwrap(), "--device", "cpu", "--precision", "fp32"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let partial = t.join("s.csv.partial");
    let rows = |p: &Path| std::fs::read_to_string(p).map_or(0, |s| s.lines().count().saturating_sub(2));
    let t0 = std::time::Instant::now();
    while rows(&partial) < 8 && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let kept = rows(&partial);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(kept, 8, "rows in {} while the run waited on its last input", partial.display());
    std::fs::remove_file(&fifo).unwrap();
    images(&t.join("more"), 1);
    std::fs::rename(t.join("more/im00.png"), &fifo).unwrap();
    ok(predict(t, &["photos", "photos/zz.png", "--workers", "1", "--resume", "-o", "s.csv"], &[]));
    ok(predict(t, &["photos", "-o", "one.csv"], &[]));
    assert_eq!(read(t.join("s.csv")), read(t.join("one.csv")));
}
