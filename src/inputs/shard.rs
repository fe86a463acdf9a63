//! One part of a job split over N processes (`predict --shard I/N`).
//!
//! A file belongs to shard `xxh3_64(name) mod N`, where `name` is the file's path as printed in
//! the output. The choice of a hash over "index in the sorted list mod N": a file's shard then
//! depends on its own name only, not on which other files exist, so shards agree even when they
//! list the folder at different moments, and a shard restarted with `--resume` after files were
//! added or removed still owns exactly the files it owned before (with the index, every file
//! after an added one moves to another shard, and restarted shards would score some files twice
//! and others never). The price: shard sizes vary around n/N by about √(n/N).
//!
//! `--shard auto` reads the scheduler's environment: Kubernetes Indexed Jobs give the index in
//! `JOB_COMPLETION_INDEX` but not the number of completions, which the Job passes in
//! `NORMIQA_SHARDS`; Slurm job arrays give `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_MIN`,
//! `SLURM_ARRAY_TASK_STEP` and `SLURM_ARRAY_TASK_COUNT` (so `--array=1-8` and `--array=0-14:2`
//! work as well as `--array=0-7`). An array given as a list (`--array=1,5,9`: its
//! `SLURM_ARRAY_TASK_MAX` is not `MIN + STEP·(COUNT-1)`) is refused by every task. With
//! `NORMIQA_SHARDS` set, a Slurm task's shard is `SLURM_ARRAY_TASK_ID / NORMIQA_SHARDS` whatever
//! array it belongs to: that is how one task is re-submitted alone (`sbatch --array=2` sees an
//! array of one task) or a list of tasks (`--array=1,3`) of a job of `NORMIQA_SHARDS` shards.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ShardError {
    #[error("--shard '{0}': expected I/N with 0 <= I < N (e.g. 0/4 ... 3/4), or 'auto'")]
    Syntax(String),
    #[error("--shard auto: {var} is '{value}', expected a whole number")]
    NotANumber { var: &'static str, value: String },
    #[error(
        "--shard auto: JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but NORMIQA_SHARDS \
         is not: set NORMIQA_SHARDS to the Job's completions"
    )]
    KubernetesCount,
    #[error("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")]
    SlurmCount,
    #[error(
        "--shard auto: the Slurm array is not one range (tasks {min} to {max} in steps of \
         {step} would be {expected} tasks, the array has {count}: a list such as --array=1,5,9): \
         give the array as one range, e.g. --array=0-{last}, or set NORMIQA_SHARDS to the number \
         of shards (each task's id is then its shard)",
        last = count.saturating_sub(1)
    )]
    SlurmList {
        min: u64,
        max: u64,
        step: u64,
        count: u64,
        expected: u64,
    },
    #[error(
        "--shard auto: SLURM_ARRAY_TASK_ID {id} is not below NORMIQA_SHARDS {count} (with \
         NORMIQA_SHARDS set, each task's id is its shard: the array's ids must be 0 to {last})",
        last = count.saturating_sub(1)
    )]
    SlurmIdOutOfRange { id: u64, count: u64 },
    #[error(
        "--shard auto: task {id} is not part of the array {min}, {min}+{step}, ... ({count} \
         tasks): give the array as one range, e.g. --array=0-{last}",
        last = count.saturating_sub(1)
    )]
    SlurmRange {
        id: u64,
        min: u64,
        step: u64,
        count: u64,
    },
    #[error(
        "--shard auto: shard index {index} is not below the shard count {count} \
         (JOB_COMPLETION_INDEX and NORMIQA_SHARDS disagree)"
    )]
    OutOfRange { index: u64, count: u64 },
    #[error(
        "--shard auto: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor \
         SLURM_ARRAY_TASK_ID (Slurm job array) is set: give the shard as --shard I/N"
    )]
    NoScheduler,
}

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// `--shard`: a fixed shard or one read from the scheduler's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed(Shard),
    Auto,
}

impl FromStr for ShardSpec {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, ShardError> {
        if s == "auto" {
            return Ok(ShardSpec::Auto);
        }
        let bad = || ShardError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(ShardSpec::Fixed(Shard { index, count }))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl ShardSpec {
    /// The shard, reading the process environment for `auto`.
    pub fn resolve(self) -> Result<Shard, ShardError> {
        self.resolve_with(|k| std::env::var(k).ok())
    }

    /// The shard, reading variables through `env` for `auto`.
    pub fn resolve_with(self, env: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
        match self {
            ShardSpec::Fixed(s) => Ok(s),
            ShardSpec::Auto => from_env(env),
        }
    }
}

fn number(env: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<Option<u64>, ShardError> {
    env(var)
        .map(|v| {
            v.trim().parse().map_err(|_| ShardError::NotANumber {
                var,
                value: v.clone(),
            })
        })
        .transpose()
}

fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
    if let Some(index) = number(&env, "JOB_COMPLETION_INDEX")? {
        let count = number(&env, "NORMIQA_SHARDS")?.ok_or(ShardError::KubernetesCount)?;
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        return Ok(Shard { index, count });
    }
    if let Some(id) = number(&env, "SLURM_ARRAY_TASK_ID")? {
        return slurm(&env, id);
    }
    Err(ShardError::NoScheduler)
}

/// The shard of Slurm array task `id` (see the module doc).
fn slurm(env: &impl Fn(&str) -> Option<String>, id: u64) -> Result<Shard, ShardError> {
    if let Some(count) = number(env, "NORMIQA_SHARDS")? {
        if count == 0 || id >= count {
            return Err(ShardError::SlurmIdOutOfRange { id, count });
        }
        return Ok(Shard { index: id, count });
    }
    let count = number(env, "SLURM_ARRAY_TASK_COUNT")?.ok_or(ShardError::SlurmCount)?;
    let min = number(env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
    let step = number(env, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
    let range = ShardError::SlurmRange {
        id,
        min,
        step,
        count,
    };
    // A list is refused by every task, before the task's own place is looked at.
    let expected_max = min + step * count.saturating_sub(1);
    if let Some(max) = number(env, "SLURM_ARRAY_TASK_MAX")? {
        if max != expected_max {
            let expected = (max.saturating_sub(min)) / step + 1;
            return Err(ShardError::SlurmList { min, max, step, count, expected });
        }
    }
    let offset = id.checked_sub(min).ok_or(range.clone())?;
    if offset % step != 0 || offset / step >= count {
        return Err(range);
    }
    Ok(Shard {
        index: offset / step,
        count,
    })
}

impl Shard {
    /// Whether the file printed as `name` belongs to this shard.
    pub fn owns(&self, name: &str) -> bool {
        xxhash_rust::xxh3::xxh3_64(name.as_bytes()) % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xxh3_64 of "photos/00000.jpg" by the reference C implementation (Python's `xxhash`).
    const XXH3_PHOTO0: u64 = 15938559317554262371;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn fixed_shards_parse_and_refuse_bad_values() {
        assert_eq!(
            "2/5".parse(),
            Ok(ShardSpec::Fixed(Shard { index: 2, count: 5 }))
        );
        assert_eq!("auto".parse(), Ok(ShardSpec::Auto));
        for bad in ["5/5", "1/0", "-1/3", "1", "a/b", "1/2/3"] {
            let e = bad.parse::<ShardSpec>().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn kubernetes_index_needs_the_count() {
        let s = ShardSpec::Auto.resolve_with(env(&[
            ("JOB_COMPLETION_INDEX", "3"),
            ("NORMIQA_SHARDS", "4"),
        ]));
        assert_eq!(s, Ok(Shard { index: 3, count: 4 }));
        let e = ShardSpec::Auto.resolve_with(env(&[("JOB_COMPLETION_INDEX", "3")]));
        assert_eq!(e, Err(ShardError::KubernetesCount));
        let e = ShardSpec::Auto.resolve_with(env(&[
            ("JOB_COMPLETION_INDEX", "4"),
            ("NORMIQA_SHARDS", "4"),
        ]));
        assert_eq!(e, Err(ShardError::OutOfRange { index: 4, count: 4 }));
    }

    #[test]
    fn slurm_arrays_count_from_their_first_task_and_step() {
        let slurm = |id: &str, min: &str, step: &str, count: &str| {
            ShardSpec::Auto.resolve_with(env(&[
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", min),
                ("SLURM_ARRAY_TASK_STEP", step),
                ("SLURM_ARRAY_TASK_COUNT", count),
            ]))
        };
        // --array=1-8: task 1 is shard 0, task 8 is shard 7.
        assert_eq!(slurm("1", "1", "1", "8"), Ok(Shard { index: 0, count: 8 }));
        assert_eq!(slurm("8", "1", "1", "8"), Ok(Shard { index: 7, count: 8 }));
        // --array=0-14:2 (8 tasks): task 14 is shard 7.
        assert_eq!(slurm("14", "0", "2", "8"), Ok(Shard { index: 7, count: 8 }));
        // --array=1,5,8 (a list: not one range).
        assert!(matches!(
            slurm("8", "1", "1", "3"),
            Err(ShardError::SlurmRange { id: 8, .. })
        ));
        // --array=1,5,9: every task refuses (SLURM_ARRAY_TASK_MAX = 9, not 1 + 2), task 1 too.
        let list = |id: &str| {
            ShardSpec::Auto.resolve_with(env(&[
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_MAX", "9"),
                ("SLURM_ARRAY_TASK_STEP", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ]))
        };
        for id in ["1", "5"] {
            let e = list(id).unwrap_err();
            assert!(matches!(e, ShardError::SlurmList { max: 9, count: 3, .. }), "{e}");
            assert!(e.to_string().contains("NORMIQA_SHARDS"), "{e}");
        }
        let e = ShardSpec::Auto.resolve_with(env(&[("SLURM_ARRAY_TASK_ID", "x")]));
        assert!(matches!(e, Err(ShardError::NotANumber { var: "SLURM_ARRAY_TASK_ID", .. })));
        assert_eq!(
            ShardSpec::Auto.resolve_with(env(&[])),
            Err(ShardError::NoScheduler)
        );
    }

    /// `sbatch --array=2` re-submits one task: alone, it is an array of one task (shard 0/1);
    /// with NORMIQA_SHARDS its id is its shard.
    #[test]
    fn with_normiqa_shards_a_slurm_task_id_is_its_shard() {
        let alone = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ];
        assert_eq!(ShardSpec::Auto.resolve_with(env(&alone)), Ok(Shard { index: 0, count: 1 }));
        let mut given = alone.to_vec();
        given.push(("NORMIQA_SHARDS", "4"));
        assert_eq!(ShardSpec::Auto.resolve_with(env(&given)), Ok(Shard { index: 2, count: 4 }));
        given[5] = ("NORMIQA_SHARDS", "2");
        let e = ShardSpec::Auto.resolve_with(env(&given)).unwrap_err();
        assert_eq!(e, ShardError::SlurmIdOutOfRange { id: 2, count: 2 });
        assert!(e.to_string().contains("0 to 1"), "{e}");
    }

    #[test]
    fn every_name_has_exactly_one_shard_and_the_hash_is_stable() {
        let names: Vec<String> = (0..1000).map(|i| format!("photos/{i:05}.jpg")).collect();
        let n = 7;
        let mut sizes = [0usize; 7];
        for name in &names {
            let owners: Vec<u64> = (0..n)
                .filter(|&i| Shard { index: i, count: n }.owns(name))
                .collect();
            assert_eq!(owners.len(), 1, "{name}");
            sizes[owners[0] as usize] += 1;
        }
        // Balanced within a few standard deviations (sqrt(1000/7) ≈ 12).
        assert!(sizes.iter().all(|&s| (100..186).contains(&s)), "{sizes:?}");
        // xxh3 is a fixed specification: the partition does not change between builds.
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b"photos/00000.jpg"), XXH3_PHOTO0);
    }
}
