//! The thread rule (src/cpus.rs): `predict` starts as many threads as the CPUs the process is
//! given — the affinity mask, SLURM_CPUS_PER_TASK (and the cgroup quota, unit-tested in
//! src/cpus.rs) — not one per core of the machine; `--threads` overrides. Checked on the
//! layout `predict` reports in its log, in fp32 (one worker with all the CPUs, on every CPU).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn photo(dir: &Path) -> PathBuf {
    let p = dir.join("a.png");
    image::RgbImage::from_fn(96, 80, |x, y| image::Rgb([(x * 2) as u8, (y * 3) as u8, 90]))
        .save(&p)
        .unwrap();
    p
}

/// `predict` of one photo with the fast shipped model; returns its log (stderr).
fn predict_log(extra: &[&str], setup: impl FnOnce(&mut Command)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/clive-efficientnet-lite0");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_normiqa"));
    cmd.arg("predict")
        .arg(photo(tmp.path()))
        .args(["--precision", "fp32", "--model"])
        .arg(&model)
        .args(extra)
        .env_remove("SLURM_CPUS_PER_TASK")
        .env("NO_COLOR", "1");
    setup(&mut cmd);
    let out = cmd.output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

fn cpus_of_this_process() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn slurm_cpus_per_task_sets_the_thread_count() {
    let log = predict_log(&[], |c| {
        c.env("SLURM_CPUS_PER_TASK", "1");
    });
    assert!(
        log.contains("1 worker(s) of 1 thread(s); 1 CPU, from SLURM_CPUS_PER_TASK=1"),
        "{log}"
    );
}

#[test]
fn the_affinity_mask_sets_the_thread_count() {
    if cpus_of_this_process() < 2 {
        eprintln!("NOTICE: this process has one CPU: an affinity mask of one cannot be told from the default; skipped");
        return;
    }
    // The first CPU this process may run on, alone.
    let first = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set), 0);
        (0..libc::CPU_SETSIZE as usize).find(|&i| libc::CPU_ISSET(i, &set)).unwrap()
    };
    let log = predict_log(&[], |c| unsafe {
        c.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(first, &mut set);
            match libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    });
    assert!(
        log.contains("1 worker(s) of 1 thread(s); 1 CPU, from the CPU affinity mask"),
        "{log}"
    );
}

#[test]
fn threads_option_overrides_the_rule() {
    let log = predict_log(&["--threads", "3"], |c| {
        c.env("SLURM_CPUS_PER_TASK", "1");
    });
    assert!(log.contains("1 worker(s) of 3 thread(s); 3 CPUs, from --threads"), "{log}");
    let n = cpus_of_this_process();
    let log = predict_log(&[], |_| {});
    assert!(log.contains(&format!("1 worker(s) of {n} thread(s)")), "{log}");
}
