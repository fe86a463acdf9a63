//! How many CPUs this process may use: the rule every command's thread counts follow.
//!
//! A process is often given fewer CPUs than the machine has, and libtorch's OpenMP threads spin
//! while they wait, so a process that starts one thread per core of the machine on a share of
//! it runs many times slower than one that starts a thread per CPU it was given (issue 21: four
//! Slurm array tasks on a 2-core node scored 0.1–0.2 images/s each, against tens per second for
//! one process). The budget is the smallest of:
//!
//! - the cores online (`sysconf(_SC_NPROCESSORS_ONLN)`);
//! - the CPU affinity mask (`sched_getaffinity`: `taskset`, `numactl`, Slurm's task/affinity and
//!   cgroup plugins, Kubernetes' static CPU manager);
//! - the cgroup CPU quota, rounded up (cgroup v2 `cpu.max` "quota period" of this process's
//!   cgroup and its ancestors; cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`): what a
//!   Kubernetes CPU limit or `docker --cpus` sets;
//! - `SLURM_CPUS_PER_TASK` (set by Slurm when the job asks `--cpus-per-task`; a Slurm without
//!   task affinity gives a task the whole node's mask, so this is its only trace).
//!
//! `--threads N` (every command) replaces the rule. The source of the budget is named in the
//! log of the commands that start workers (`predict`, `serve`), so a user can see why.

use std::path::Path;
use std::sync::OnceLock;

/// The CPUs a process may use and what limited them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub cpus: usize,
    /// What gave `cpus`, e.g. "the CPU affinity mask" or "SLURM_CPUS_PER_TASK=1".
    pub source: String,
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = if self.cpus == 1 { "" } else { "s" };
        write!(f, "{} CPU{s}, from {}", self.cpus, self.source)
    }
}

/// The limits read from the system, each `None` where absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub online: Option<usize>,
    pub affinity: Option<usize>,
    /// (CPUs rounded up, the quota as written, e.g. "150000 100000").
    pub quota: Option<(usize, String)>,
    /// The value of SLURM_CPUS_PER_TASK as written.
    pub slurm: Option<String>,
}

impl Limits {
    /// Reads every limit of this process.
    pub fn read() -> Limits {
        Limits {
            online: online_cores(),
            affinity: affinity_cpus(),
            quota: cgroup_quota(Path::new("/proc/self/cgroup"), Path::new("/sys/fs/cgroup")),
            slurm: std::env::var("SLURM_CPUS_PER_TASK").ok(),
        }
    }

    /// The smallest limit (at least 1). A SLURM_CPUS_PER_TASK that is not a positive integer is
    /// ignored with a warning (Slurm writes it; a user who set it by hand is told).
    pub fn budget(&self) -> Budget {
        let mut best = Budget {
            cpus: self.online.unwrap_or(1).max(1),
            source: "the cores online".into(),
        };
        let mut take = |cpus: usize, source: String| {
            if cpus >= 1 && cpus < best.cpus {
                best = Budget { cpus, source };
            }
        };
        if let Some(n) = self.affinity {
            take(n, "the CPU affinity mask".into());
        }
        if let Some((n, written)) = &self.quota {
            take(*n, format!("the cgroup CPU quota ({written})"));
        }
        if let Some(v) = &self.slurm {
            match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => take(n, format!("SLURM_CPUS_PER_TASK={n}")),
                _ => tracing::warn!(
                    "SLURM_CPUS_PER_TASK={v:?} is not a positive whole number: ignored for the thread count"
                ),
            }
        }
        best
    }
}

static CURRENT: OnceLock<Budget> = OnceLock::new();

/// The budget of this process: `--threads` if given to [`init`], else the system's [`Limits`].
/// Read once; later calls return the same.
pub fn current() -> &'static Budget {
    CURRENT.get_or_init(|| Limits::read().budget())
}

/// Sets the budget once at start-up (`threads`: the `--threads` option) and applies it to the
/// thread pools every command shares: libtorch's intra-op threads (this thread's; the inter-op
/// pool runs only forked TorchScript work, which normiqa does not use) and rayon's pool. Worker
/// threads that set their own intra-op count (`predict`, `serve`) share it out.
pub fn init(threads: Option<usize>) -> &'static Budget {
    let budget = CURRENT.get_or_init(|| match threads {
        Some(n) => Budget {
            cpus: n.max(1),
            source: "--threads".into(),
        },
        None => Limits::read().budget(),
    });
    tch::set_num_threads(budget.cpus as i32);
    // An error here means a pool already exists (a library caller built one): keep theirs.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(budget.cpus)
        .build_global();
    budget
}

fn online_cores() -> Option<usize> {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    (n > 0).then_some(n as usize)
}

fn affinity_cpus() -> Option<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        let n = libc::CPU_COUNT(&set);
        (n > 0).then_some(n as usize)
    }
}

/// CPUs allowed by a cgroup quota line: v2 `cpu.max` ("max 100000" or "150000 100000"), or v1
/// as "quota period" from `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota −1: none). Rounded
/// up: 1.5 CPUs of quota keep 2 threads busy half the time, better than 1 all the time.
pub fn quota_cpus(line: &str) -> Option<usize> {
    let mut it = line.split_whitespace();
    let (quota, period) = (it.next()?, it.next()?);
    let quota: i64 = quota.parse().ok()?;
    let period: i64 = period.parse().ok()?;
    (quota > 0 && period > 0).then(|| (quota as u64).div_ceil(period as u64).max(1) as usize)
}

/// The tightest CPU quota of this process's cgroup and its ancestors, read from the cgroup file
/// of the process (`/proc/self/cgroup`) and the cgroup file system's root.
pub fn cgroup_quota(proc_cgroup: &Path, root: &Path) -> Option<(usize, String)> {
    let text = std::fs::read_to_string(proc_cgroup).ok()?;
    let mut best: Option<(usize, String)> = None;
    let mut consider = |line: String| {
        if let Some(n) = quota_cpus(&line) {
            if best.as_ref().is_none_or(|(b, _)| n < *b) {
                best = Some((n, line.trim().to_string()));
            }
        }
    };
    for entry in text.lines() {
        let mut parts = entry.splitn(3, ':');
        let (_, controllers, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            // cgroup v2: the process's group and every ancestor, up to the root of the mount
            // (inside a container the path may be "/" with the limit on the mount's root).
            for dir in ancestors(&root.join(rel), root) {
                if let Ok(s) = std::fs::read_to_string(dir.join("cpu.max")) {
                    consider(s);
                }
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            let base = root.join(controllers);
            for dir in ancestors(&base.join(rel), &base) {
                let q = std::fs::read_to_string(dir.join("cpu.cfs_quota_us"));
                let p = std::fs::read_to_string(dir.join("cpu.cfs_period_us"));
                if let (Ok(q), Ok(p)) = (q, p) {
                    consider(format!("{} {}", q.trim(), p.trim()));
                }
            }
        }
    }
    best
}

/// `dir` and its parents up to and including `root`.
fn ancestors(dir: &Path, root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d {
        out.push(p.to_path_buf());
        if p == root || !p.starts_with(root) {
            break;
        }
        d = p.parent();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_lines_round_up_and_max_is_no_limit() {
        assert_eq!(quota_cpus("max 100000\n"), None);
        assert_eq!(quota_cpus("100000 100000"), Some(1));
        assert_eq!(quota_cpus("150000 100000"), Some(2));
        assert_eq!(quota_cpus("50000 100000"), Some(1));
        assert_eq!(quota_cpus("-1 100000"), None);
        assert_eq!(quota_cpus("garbage"), None);
    }

    #[test]
    fn the_smallest_limit_wins_and_is_named() {
        let l = Limits {
            online: Some(16),
            affinity: Some(8),
            quota: Some((4, "400000 100000".into())),
            slurm: Some("2".into()),
        };
        assert_eq!(l.budget(), Budget { cpus: 2, source: "SLURM_CPUS_PER_TASK=2".into() });
        let l = Limits { slurm: None, ..l };
        assert_eq!(l.budget().cpus, 4);
        assert!(l.budget().source.contains("cgroup CPU quota (400000 100000)"));
        let l = Limits { quota: None, ..l };
        assert_eq!(l.budget().source, "the CPU affinity mask");
        let l = Limits { affinity: None, ..l };
        assert_eq!(l.budget(), Budget { cpus: 16, source: "the cores online".into() });
    }

    #[test]
    fn a_malformed_slurm_value_is_ignored() {
        let l = Limits { online: Some(4), slurm: Some("two".into()), ..Default::default() };
        assert_eq!(l.budget().cpus, 4);
        let l = Limits { online: Some(4), slurm: Some("0".into()), ..Default::default() };
        assert_eq!(l.budget().cpus, 4);
    }

    #[test]
    fn cgroup_v2_quota_of_an_ancestor_limits_the_process() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fs");
        std::fs::create_dir_all(root.join("kubepods/pod1/ctr")).unwrap();
        std::fs::write(root.join("cpu.max"), "max 100000\n").unwrap();
        std::fs::write(root.join("kubepods/pod1/cpu.max"), "200000 100000\n").unwrap();
        std::fs::write(root.join("kubepods/pod1/ctr/cpu.max"), "max 100000\n").unwrap();
        let proc = tmp.path().join("cgroup");
        std::fs::write(&proc, "0::/kubepods/pod1/ctr\n").unwrap();
        assert_eq!(cgroup_quota(&proc, &root), Some((2, "200000 100000".into())));
    }

    #[test]
    fn cgroup_v1_quota_is_read_from_the_cpu_controller() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("fs");
        let grp = root.join("cpu,cpuacct/docker/abc");
        std::fs::create_dir_all(&grp).unwrap();
        std::fs::write(grp.join("cpu.cfs_quota_us"), "300000\n").unwrap();
        std::fs::write(grp.join("cpu.cfs_period_us"), "100000\n").unwrap();
        let proc = tmp.path().join("cgroup");
        std::fs::write(&proc, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n").unwrap();
        assert_eq!(cgroup_quota(&proc, &root), Some((3, "300000 100000".into())));
    }
}
