//! The rules of a run folder (the `--out` of `train` and `distill`, each run of `run`), so that a
//! folder never mixes the files of two runs.
//!
//! - **Lock.** While a command writes a run folder it holds an OS advisory lock (`flock`) on
//!   `RUN/.normiqa.lock`. The operating system releases it when the process ends, however it ends
//!   (a crash or `kill -9` included), so a lock file left behind never blocks anyone; the file only
//!   records the holder's pid and command line for the message a second process gets. A second
//!   process on the same folder is refused at once.
//! - **Identity.** A run is its resolved configuration (the `config.toml` it writes), less the
//!   options that say where it runs rather than what it computes ([`Layout::ignored`]: the
//!   device). Configurations are compared as parsed by this version of normiqa, so options added
//!   later with a default do not make an old run "another configuration".
//! - **Decision** ([`Start`]):
//!
//!   | the folder holds                                   | without `--overwrite`           |
//!   |----------------------------------------------------|---------------------------------|
//!   | nothing (absent or empty)                          | run ([`Start::Fresh`])          |
//!   | an unfinished run of the same configuration        | resume it ([`Start::Resume`])   |
//!   | a finished run of the same configuration           | nothing to do ([`Start::Finished`]) |
//!   | a run of another configuration that never started (only its `config.toml`, and `failed.txt` when it failed before its first epoch: e.g. on its data) | replaced ([`Start::Fresh`]): nothing of it is lost |
//!   | a run of another configuration, finished or not    | refused, naming the differing options |
//!   | only files named as this kind's, no readable configuration | refused, naming the files |
//!   | any other file, no readable configuration          | refused, even with `--overwrite` |
//!
//!   "Finished" means the layout's result file exists (`run.json`, `results.json`).
//! - **Record.** A run that starts in an empty folder keeps a record of the files it writes,
//!   `RUN/.normiqa-files` ([`RECORD`], written atomically): when it takes the folder it lists
//!   every name of [`Layout::own`] (none exists then that it did not write), and when it lets the
//!   folder go it keeps only those that exist. A later run of the folder keeps it up the same way.
//!   A file named as one of normiqa's that the record does not list is not the run's: a run that
//!   would write into such a folder (fresh or resumed) is refused, naming the file, rather than
//!   write over it. The names normiqa writes beside a run after the run let the folder go
//!   ([`Layout::beside`]: `failed.txt`, the demo's `per_type.png`) count as the run's.
//! - **Overwrite.** With `--overwrite` the files the record lists are deleted first and the run
//!   starts afresh. Any other file in a run folder is left alone (even one named as normiqa's
//!   but not in the record); a folder that holds other files and no run (a photo folder,
//!   another kind of run) is never written into. A folder written before normiqa kept records
//!   has none: `--overwrite` is refused there (nothing in it can be proven to be normiqa's),
//!   except for the configuration and failure note of a run that never started, which are
//!   replaced as below; without `--overwrite` such a folder is resumed or left as before.
//!
//! Temporary files of an interrupted atomic write (`.*.normiqa-tmp*`, [`crate::atomic`]) are
//! removed when a process takes the lock: no other process can be writing them then.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Serialize};

use crate::atomic;

/// The lock file in a run folder.
pub const LOCK: &str = ".normiqa.lock";
/// The resolved configuration of the run in a folder.
pub const CONFIG: &str = "config.toml";
/// Why the run in a folder failed (written by `normiqa run` and `normiqa distill`).
pub const FAILED: &str = "failed.txt";
/// The record of the files normiqa wrote in a run folder (see the module doc), one name a line.
pub const RECORD: &str = ".normiqa-files";

/// What a kind of run writes into its folder.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// What the folder holds, for messages ("training run").
    pub what: &'static str,
    /// The file whose presence means the run finished.
    pub finished: &'static str,
    /// Glob patterns of the top-level names a run of this kind writes.
    pub own: &'static [&'static str],
    /// Dotted option paths left out of the identity (where the run executes, not what it is).
    pub ignored: &'static [&'static str],
    /// Names of `own` that normiqa writes beside a run after the run let the folder go, so that
    /// its record cannot list them: `failed.txt` (by `run`), the demo's `per_type.png` (by
    /// `test --plot`). They count as the run's.
    pub beside: &'static [&'static str],
}

/// `normiqa train` (and each run of `normiqa run`).
pub const TRAIN: Layout = Layout {
    what: "training run",
    finished: "run.json",
    own: &[
        CONFIG,
        "run.json",
        "weights.safetensors",
        "log.jsonl",
        // The one predictions file a run writes (a user's `predictions_koniq.csv` beside it
        // is theirs; and `--overwrite` deletes only the names in the folder's record).
        "predictions_test.csv",
        "resume",
        "failed.txt",
        "per_type.png",
    ],
    ignored: &["device"],
    beside: &[FAILED, "per_type.png"],
};

/// `normiqa distill`.
pub const DISTILL: Layout = Layout {
    what: "distillation experiment",
    finished: "results.json",
    own: &[
        CONFIG,
        "results.json",
        "results.md",
        "per_type_srcc.png",
        "fig1_per_type_srcc_per_epoch.png",
        "fig1_violins.png",
        "curves.png",
        "baseline",
        "urkd",
        "mrkd",
    ],
    ignored: &["run.device"],
    beside: &[],
};

/// One MRKD pair of `normiqa run` (`procedure = "distill"`): `teacher/` and `student/` are run
/// folders of the [`TRAIN`] layout.
pub const PAIR: Layout = Layout {
    what: "MRKD pair run",
    finished: "pair.json",
    own: &[
        CONFIG,
        "pair.json",
        "log.jsonl",
        "resume",
        "failed.txt",
        "teacher",
        "student",
        "teacher.safetensors",
        "student.safetensors",
    ],
    ignored: &["device"],
    beside: &[FAILED],
};

/// `normiqa pretrain-scnn`.
pub const SCNN: Layout = Layout {
    what: "S-CNN pre-training run",
    finished: "scnn.json",
    own: &[CONFIG, "scnn.json", "scnn.safetensors", "log.jsonl", "resume", "failed.txt"],
    ignored: &["device"],
    beside: &[FAILED],
};

/// How a run goes on in its folder (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Nothing there (or cleared by `--overwrite`): run from the start.
    Fresh,
    /// An unfinished run of this configuration: go on from its saved state, if any.
    Resume,
    /// A finished run of this configuration: nothing to do.
    Finished,
}

/// One option whose value differs between the folder's run and the new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub option: String,
    pub folder: Option<String>,
    pub now: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "(not set)".into());
        write!(f, "{} {} there, {} now", self.option, v(&self.folder), v(&self.now))
    }
}

/// What a folder holds, compared with a configuration ([`inspect`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// Absent, or nothing but a lock file.
    Empty,
    /// A run of this configuration; `finished` when its result file exists.
    Same { finished: bool },
    /// A run of another configuration. `started`: it holds more than its configuration (and a
    /// `failed.txt`): a log, saved state, weights or results. One that never started (it failed
    /// before its first epoch, e.g. on its data) is replaced without `--overwrite`.
    Other {
        finished: bool,
        started: bool,
        differences: Vec<Difference>,
    },
    /// Files, but no configuration of this kind that can be read (`reason` says why);
    /// `foreign` lists those that are not named as a run of this kind names its files.
    NotARun {
        files: Vec<String>,
        foreign: Vec<String>,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    #[error("{dir} is being written by another normiqa process ({holder}); wait for it to end, or choose another output folder")]
    Locked { dir: PathBuf, holder: String },
    #[error("{dir} holds {state} {what} of another configuration ({diffs}); pass --overwrite to replace it, or choose another output folder")]
    OtherConfiguration {
        dir: PathBuf,
        what: &'static str,
        state: &'static str,
        diffs: String,
    },
    #[error("{dir} is not empty and holds no {what} ({reason}; found {files}); choose another output folder (--overwrite deletes only the files of a normiqa run)")]
    NotARun {
        dir: PathBuf,
        what: &'static str,
        reason: String,
        files: String,
    },
    #[error("{dir} holds files of a {what} but no configuration normiqa can read ({reason}; found {files}); pass --overwrite to delete them, or choose another output folder")]
    Unidentified {
        dir: PathBuf,
        what: &'static str,
        reason: String,
        files: String,
    },
    #[error("{dir} holds files of a {what} written before normiqa kept a record of a run's files ({RECORD}), so none of them can be proven to be normiqa's ({files}); --overwrite deletes only recorded files: delete these yourself, or choose another output folder")]
    NoRecord {
        dir: PathBuf,
        what: &'static str,
        files: String,
    },
    #[error("{dir} holds {files}, named as the files of a {what} but not written by the run there (its {RECORD} does not list them); the run would write over them: move them elsewhere, or choose another output folder")]
    Unrecorded {
        dir: PathBuf,
        what: &'static str,
        files: String,
    },
    #[error("{0} is a file, not a folder; choose a folder as the output")]
    NotAFolder(PathBuf),
    #[error(transparent)]
    Write(#[from] atomic::AtomicError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the configuration cannot be written as TOML: {0}")]
    Serialize(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RunFolderError + '_ {
    move |source| RunFolderError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A run folder held by this process (the lock is released when this is dropped).
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    start: Start,
    /// The names of [`Layout::own`], for the record kept up when the folder is let go; `None`
    /// when no record is kept (a finished run left as it is, or a folder without a record).
    record: Option<&'static [&'static str]>,
    _lock: Lock,
}

impl RunFolder {
    /// Creates and locks `dir`, then applies the rules of the module doc to `config`.
    pub fn open<T: Serialize + DeserializeOwned>(
        dir: &Path,
        layout: &Layout,
        config: &T,
        overwrite: bool,
    ) -> Result<Self, RunFolderError> {
        let lock = Lock::acquire(dir)?;
        let found = inspect(dir, layout, config)?;
        let record = read_record(dir)?;
        // Files named as ours that the record does not list: a run that writes here is refused
        // (before anything is deleted) rather than write over them.
        let own = patterns(layout);
        let unrecorded: Vec<String> = match &record {
            Some(r) => entries(dir)?
                .into_iter()
                .filter(|n| own.iter().any(|p| p.matches(n)) && !r.contains(n))
                .filter(|n| !layout.beside.contains(&n.as_str()))
                .collect(),
            None => Vec::new(),
        };
        let writes_over = |unrecorded: Vec<String>| RunFolderError::Unrecorded {
            dir: dir.to_path_buf(),
            what: layout.what,
            files: list(unrecorded.into_iter(), 6, "entries"),
        };
        let start = match (&found, overwrite) {
            (Found::Empty, _) => Start::Fresh,
            // Other people's files: never deleted, never written beside.
            (Found::NotARun { foreign, .. }, _) if !foreign.is_empty() => {
                return Err(refusal(dir, layout, &found))
            }
            (_, true) if !unrecorded.is_empty() => return Err(writes_over(unrecorded)),
            (_, true) => {
                clear_recorded(dir, layout, record.as_ref())?;
                Start::Fresh
            }
            (Found::Same { finished: true }, false) => Start::Finished,
            (Found::Same { finished: false }, false) if !unrecorded.is_empty() => {
                return Err(writes_over(unrecorded))
            }
            (Found::Same { finished: false }, false) => Start::Resume,
            (Found::Other { started: false, .. }, false) => {
                clear(dir, layout)?;
                Start::Fresh
            }
            (found, false) => return Err(refusal(dir, layout, found)),
        };
        // The record: kept up where there is one, begun by a run in an empty folder; a folder
        // of an older normiqa without one stays without (nothing in it is provably ours).
        let keeps = start != Start::Finished && (record.is_some() || entries(dir)?.is_empty());
        if keeps {
            // Every name of the layout: none exists now that the run did not write.
            write_record(dir, layout.own.iter().map(|n| n.to_string()).collect())?;
        }
        Ok(RunFolder {
            dir: dir.to_path_buf(),
            start,
            record: keeps.then_some(layout.own),
            _lock: lock,
        })
    }

    /// The set-up every procedure does before its engine runs: [`RunFolder::open`], then, for a
    /// run that starts or resumes, its `config.toml` (`config`, written atomically). `None`:
    /// this configuration already finished in `dir`, nothing to do.
    pub fn begin<T: Serialize + DeserializeOwned>(
        dir: &Path,
        layout: &Layout,
        config: &T,
        overwrite: bool,
    ) -> anyhow::Result<Option<Self>> {
        let folder = RunFolder::open(dir, layout, config, overwrite)?;
        if folder.start == Start::Finished {
            return Ok(None);
        }
        let text = toml::to_string_pretty(config)?;
        atomic::write(&dir.join(CONFIG), text.as_bytes())?;
        Ok(Some(folder))
    }

    pub fn start(&self) -> Start {
        self.start
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RunFolder {
    /// Keeps in the record only the names that exist (those the run wrote); the lock goes
    /// after it. An error here leaves the longer list, which only names files that are absent.
    fn drop(&mut self) {
        if let Some(own) = self.record {
            let present = entries(&self.dir).unwrap_or_default();
            let names = own.iter().filter(|n| present.iter().any(|p| p == *n)).map(|n| n.to_string());
            let _ = write_record(&self.dir, names.collect());
        }
    }
}

/// The names in `dir`'s record, or `None` where it has none.
fn read_record(dir: &Path) -> Result<Option<std::collections::BTreeSet<String>>, RunFolderError> {
    let path = dir.join(RECORD);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            text.lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect(),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

fn write_record(dir: &Path, names: std::collections::BTreeSet<String>) -> Result<(), RunFolderError> {
    let mut text = String::from(
        "# The files normiqa wrote for the run in this folder; --overwrite deletes only these.\n",
    );
    for n in names {
        text.push_str(&n);
        text.push('\n');
    }
    Ok(atomic::write(&dir.join(RECORD), text.as_bytes())?)
}

/// The error for a folder that [`RunFolder::open`] refuses (anything but empty or the same run).
pub fn refusal(dir: &Path, layout: &Layout, found: &Found) -> RunFolderError {
    match found {
        Found::Other {
            finished,
            differences,
            ..
        } => RunFolderError::OtherConfiguration {
            dir: dir.to_path_buf(),
            what: layout.what,
            state: if *finished { "a finished" } else { "an unfinished" },
            diffs: list(differences.iter().map(|d| d.to_string()), 6, "differences"),
        },
        Found::NotARun {
            files,
            foreign,
            reason,
        } if foreign.is_empty() => RunFolderError::Unidentified {
            dir: dir.to_path_buf(),
            what: layout.what,
            reason: reason.clone(),
            files: list(files.iter().cloned(), 6, "entries"),
        },
        Found::NotARun {
            foreign, reason, ..
        } => RunFolderError::NotARun {
            dir: dir.to_path_buf(),
            what: layout.what,
            reason: reason.clone(),
            files: list(foreign.iter().cloned(), 6, "entries"),
        },
        Found::Empty | Found::Same { .. } => unreachable!("refusal of a usable folder"),
    }
}

/// "a; b; c and 4 more entries".
fn list(items: impl Iterator<Item = String>, max: usize, noun: &str) -> String {
    let all: Vec<String> = items.collect();
    let mut s = all.iter().take(max).cloned().collect::<Vec<_>>().join("; ");
    if all.len() > max {
        s.push_str(&format!(" and {} more {noun}", all.len() - max));
    }
    s
}

/// What `dir` holds compared with `config` (no lock taken: for listings such as `run --dry-run`).
pub fn inspect<T: Serialize + DeserializeOwned>(
    dir: &Path,
    layout: &Layout,
    config: &T,
) -> Result<Found, RunFolderError> {
    let entries = entries(dir)?;
    if entries.is_empty() {
        return Ok(Found::Empty);
    }
    let cfg_path = dir.join(CONFIG);
    let own = patterns(layout);
    let not_a_run = |reason: String| Found::NotARun {
        files: entries.clone(),
        foreign: entries
            .iter()
            .filter(|n| !own.iter().any(|p| p.matches(n)))
            .cloned()
            .collect(),
        reason,
    };
    let text = match std::fs::read_to_string(&cfg_path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(not_a_run(format!("no {CONFIG}")))
        }
        Err(e) => return Err(io_err(&cfg_path)(e)),
    };
    let stored: T = match toml::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            let first = e.message().lines().next().unwrap_or("").to_string();
            return Ok(not_a_run(format!(
                "its {CONFIG} is not the configuration of a {}: {first}",
                layout.what
            )));
        }
    };
    let differences = compare(&identity(&stored, layout)?, &identity(config, layout)?);
    let finished = dir.join(layout.finished).exists();
    Ok(if differences.is_empty() {
        Found::Same { finished }
    } else {
        Found::Other {
            finished,
            started: entries.iter().any(|n| n != CONFIG && n != FAILED),
            differences,
        }
    })
}

/// The top-level names in `dir`, sorted, less the lock file and temporary files.
fn entries(dir: &Path) -> Result<Vec<String>, RunFolderError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut names = Vec::new();
    for e in rd {
        let name = e.map_err(io_err(dir))?.file_name();
        let name = name.to_string_lossy().into_owned();
        if name != LOCK && name != RECORD && !atomic::is_temp_name(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The configuration as a flat map "dotted.option" → TOML value, less the ignored options.
fn identity<T: Serialize>(
    config: &T,
    layout: &Layout,
) -> Result<BTreeMap<String, String>, RunFolderError> {
    let table =
        toml::Table::try_from(config).map_err(|e| RunFolderError::Serialize(e.to_string()))?;
    let mut flat = BTreeMap::new();
    flatten("", &toml::Value::Table(table), &mut flat);
    for key in layout.ignored {
        flat.retain(|k, _| k != key && !k.starts_with(&format!("{key}.")));
    }
    Ok(flat)
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn compare(folder: &BTreeMap<String, String>, now: &BTreeMap<String, String>) -> Vec<Difference> {
    let keys: std::collections::BTreeSet<&String> = folder.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter(|k| folder.get(*k) != now.get(*k))
        .map(|k| Difference {
            option: k.clone(),
            folder: folder.get(k).cloned(),
            now: now.get(k).cloned(),
        })
        .collect()
}

/// The layout's names as glob patterns.
fn patterns(layout: &Layout) -> Vec<glob::Pattern> {
    layout
        .own
        .iter()
        .map(|p| glob::Pattern::new(p).expect("layout patterns are valid globs"))
        .collect()
}

/// `--overwrite`: deletes the files of `layout` in `dir` that its record lists; other files
/// stay. Without a record only a never-started run's configuration and failure note go (as
/// without `--overwrite`); anything more is refused ([`RunFolderError::NoRecord`]).
fn clear_recorded(
    dir: &Path,
    layout: &Layout,
    record: Option<&std::collections::BTreeSet<String>>,
) -> Result<(), RunFolderError> {
    let Some(record) = record else {
        let own = patterns(layout);
        let ours: Vec<String> = entries(dir)?
            .into_iter()
            .filter(|n| own.iter().any(|p| p.matches(n)) && n != CONFIG && n != FAILED)
            .collect();
        if !ours.is_empty() {
            return Err(RunFolderError::NoRecord {
                dir: dir.to_path_buf(),
                what: layout.what,
                files: list(ours.into_iter(), 6, "entries"),
            });
        }
        return clear(dir, layout);
    };
    remove(dir, layout, |name| record.contains(name) || layout.beside.contains(&name))
}

/// Deletes the normiqa files of `layout` in `dir` (a never-started run's, or `--overwrite`'s
/// of a folder without a record, where only its configuration and failure note are left).
fn clear(dir: &Path, layout: &Layout) -> Result<(), RunFolderError> {
    remove(dir, layout, |_| true)
}

/// Deletes the entries of `dir` named as `layout`'s files for which `ours` holds.
fn remove(dir: &Path, layout: &Layout, ours: impl Fn(&str) -> bool) -> Result<(), RunFolderError> {
    let patterns = patterns(layout);
    for name in entries(dir)? {
        if !patterns.iter().any(|p| p.matches(&name)) || !ours(&name) {
            continue;
        }
        let path = dir.join(&name);
        let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(io_err(&path))?;
    }
    Ok(())
}

/// The advisory lock on a folder (see the module doc); released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Creates `dir` if needed and locks it, or says who holds it. Removes leftover temporary
    /// files of interrupted writes once the lock is held.
    pub fn acquire(dir: &Path) -> Result<Self, RunFolderError> {
        if dir.exists() && !dir.is_dir() {
            return Err(RunFolderError::NotAFolder(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let path = dir.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(RunFolderError::Locked {
                    dir: dir.to_path_buf(),
                    holder: if holder.is_empty() {
                        "it did not say which".into()
                    } else {
                        holder.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        // Informational only: the OS lock, not this text, decides.
        let me = format!("pid {}: {}", std::process::id(), command_line());
        let _ = file.set_len(0).and_then(|_| file.write_all(me.as_bytes()));
        remove_temporaries(dir);
        Ok(Lock { _file: file })
    }
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let prog = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "normiqa".into());
    std::iter::once(prog)
        .chain(args.into_iter().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Removes leftover temporary files in `dir` and its run's sub-folders (`resume/`,
/// `mrkd/seed-1/`, ...); best effort.
fn remove_temporaries(dir: &Path) {
    let walk = walkdir::WalkDir::new(dir).max_depth(3).follow_links(false);
    for e in walk.into_iter().flatten() {
        if e.file_type().is_file() && atomic::is_temp_name(&e.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize)]
    struct Cfg {
        seed: u64,
        lr: f64,
        device: String,
        #[serde(default)]
        added_later: bool,
    }

    fn cfg(seed: u64, device: &str) -> Cfg {
        Cfg {
            seed,
            lr: 0.1,
            device: device.into(),
            added_later: false,
        }
    }

    fn write_config(dir: &Path, c: &Cfg) {
        std::fs::write(dir.join(CONFIG), toml::to_string(c).unwrap()).unwrap();
    }

    fn open(dir: &Path, c: &Cfg, overwrite: bool) -> Result<Start, RunFolderError> {
        RunFolder::open(dir, &TRAIN, c, overwrite).map(|f| f.start())
    }

    /// A run of `c` that writes `files` (and its configuration) while it holds the folder.
    fn run_writing(dir: &Path, c: &Cfg, overwrite: bool, files: &[&str]) -> Result<Start, RunFolderError> {
        let folder = RunFolder::open(dir, &TRAIN, c, overwrite)?;
        write_config(dir, c);
        for f in files {
            if *f == "resume" {
                std::fs::create_dir_all(dir.join(f)).unwrap();
            } else {
                std::fs::write(dir.join(f), "ours").unwrap();
            }
        }
        Ok(folder.start())
    }

    fn recorded(dir: &Path) -> Vec<String> {
        read_record(dir).unwrap().expect("a record").into_iter().collect()
    }

    #[test]
    fn the_decision_follows_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        assert_eq!(run_writing(&dir, &cfg(1, "cpu"), false, &[]).unwrap(), Start::Fresh);
        // The device is not part of the identity.
        assert_eq!(open(&dir, &cfg(1, "cuda"), false).unwrap(), Start::Resume);
        assert_eq!(run_writing(&dir, &cfg(1, "cuda"), false, &["run.json"]).unwrap(), Start::Resume);
        assert_eq!(open(&dir, &cfg(1, "cpu"), false).unwrap(), Start::Finished);
        // An option with a default that the stored file lacks is not a difference.
        std::fs::write(dir.join(CONFIG), "seed = 1\nlr = 0.1\ndevice = \"cpu\"\n").unwrap();
        assert_eq!(open(&dir, &cfg(1, "cpu"), false).unwrap(), Start::Finished);
    }

    #[test]
    fn another_configuration_is_refused_unless_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        run_writing(&dir, &cfg(1, "cpu"), false, &["resume", "weights.safetensors"]).unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let err = open(&dir, &cfg(2, "cpu"), false).unwrap_err().to_string();
        assert!(
            err.contains("an unfinished training run of another configuration")
                && err.contains("seed 1 there, 2 now")
                && err.contains("--overwrite")
                && err.contains(&dir.display().to_string()),
            "{err}"
        );
        run_writing(&dir, &cfg(1, "cpu"), false, &["run.json"]).unwrap();
        let err = open(&dir, &cfg(2, "cpu"), false).unwrap_err().to_string();
        assert!(err.contains("a finished training run"), "{err}");
        assert!(dir.join("weights.safetensors").exists(), "refusal changes nothing");
        assert_eq!(open(&dir, &cfg(2, "cpu"), true).unwrap(), Start::Fresh);
        assert_eq!(entries(&dir).unwrap(), ["notes.txt"], "only normiqa's files go");
    }

    #[test]
    fn a_run_of_another_configuration_that_never_started_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir_all(&dir).unwrap();
        write_config(&dir, &cfg(1, "cpu"));
        std::fs::write(dir.join(FAILED), "no column 'score' in labels.csv").unwrap();
        assert_eq!(open(&dir, &cfg(2, "cpu"), false).unwrap(), Start::Fresh);
        assert!(entries(&dir).unwrap().is_empty(), "its config and failure note are gone");
        // Once it holds more (a log), it is a run, refused as before.
        write_config(&dir, &cfg(1, "cpu"));
        std::fs::write(dir.join("log.jsonl"), "{}").unwrap();
        let err = open(&dir, &cfg(2, "cpu"), false).unwrap_err().to_string();
        assert!(err.contains("an unfinished training run of another configuration"), "{err}");
    }

    #[test]
    fn a_folder_of_other_files_is_refused_with_their_names_even_with_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("holiday.jpg"), "x").unwrap();
        std::fs::write(tmp.path().join("run.json"), "{}").unwrap();
        for overwrite in [false, true] {
            let err = open(tmp.path(), &cfg(1, "cpu"), overwrite)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("holiday.jpg")
                    && !err.contains("run.json")
                    && err.contains("no config.toml"),
                "{err}"
            );
        }
        std::fs::write(tmp.path().join(CONFIG), "[model]\nname = 3\n").unwrap();
        let err = open(tmp.path(), &cfg(1, "cpu"), true).unwrap_err().to_string();
        assert!(err.contains("not the configuration of a training run"), "{err}");
        assert!(tmp.path().join("run.json").exists(), "nothing deleted");
    }

    #[test]
    fn normiqa_files_without_a_configuration_go_with_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        run_writing(tmp.path(), &cfg(1, "cpu"), false, &["weights.safetensors", "log.jsonl"]).unwrap();
        std::fs::remove_file(tmp.path().join(CONFIG)).unwrap();
        let err = open(tmp.path(), &cfg(1, "cpu"), false).unwrap_err().to_string();
        assert!(
            err.contains("log.jsonl; weights.safetensors") && err.contains("--overwrite"),
            "{err}"
        );
        assert_eq!(open(tmp.path(), &cfg(1, "cpu"), true).unwrap(), Start::Fresh);
        assert!(entries(tmp.path()).unwrap().is_empty());
    }

    /// The record lists what the run wrote; `--overwrite` deletes only that: a user's
    /// `predictions_mine.csv`, and a file named as one of ours (`predictions_test.csv`) that the
    /// run did not write, survive. The latter makes a run that would write over it refuse,
    /// before anything is deleted. (Before the record, `--overwrite` deleted
    /// `predictions_test.csv` by its name.)
    #[test]
    fn overwrite_deletes_only_the_files_the_record_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        run_writing(&dir, &cfg(1, "cpu"), false, &["weights.safetensors", "run.json", "resume"]).unwrap();
        assert_eq!(recorded(&dir), ["config.toml", "resume", "run.json", "weights.safetensors"]);
        for f in ["predictions_mine.csv", "predictions_test.csv"] {
            std::fs::write(dir.join(f), "mine").unwrap();
        }
        let err = open(&dir, &cfg(2, "cpu"), true).unwrap_err().to_string();
        assert!(
            err.contains("predictions_test.csv") && !err.contains("predictions_mine.csv")
                && err.contains("not written by the run there") && err.contains(RECORD),
            "{err}"
        );
        assert!(dir.join("weights.safetensors").exists(), "a refusal deletes nothing");
        // Moved away: the run's own files go, the user's stay.
        std::fs::rename(dir.join("predictions_test.csv"), tmp.path().join("kept.csv")).unwrap();
        assert_eq!(run_writing(&dir, &cfg(2, "cpu"), true, &["log.jsonl"]).unwrap(), Start::Fresh);
        assert_eq!(entries(&dir).unwrap(), ["config.toml", "log.jsonl", "predictions_mine.csv"]);
        assert_eq!(std::fs::read_to_string(dir.join("predictions_mine.csv")).unwrap(), "mine");
        assert_eq!(recorded(&dir), ["config.toml", "log.jsonl"]);
        // A failure note written after the run let the folder go counts as the run's.
        std::fs::write(dir.join(FAILED), "failed").unwrap();
        assert_eq!(open(&dir, &cfg(2, "cpu"), false).unwrap(), Start::Resume);
        assert_eq!(open(&dir, &cfg(3, "cpu"), true).unwrap(), Start::Fresh);
        assert_eq!(entries(&dir).unwrap(), ["predictions_mine.csv"]);
    }

    /// A folder of an older normiqa (no record): resumed and left as before, but `--overwrite`
    /// deletes nothing of it that cannot be proven normiqa's: refused, naming the files.
    #[test]
    fn a_folder_without_a_record_is_not_cleared_by_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir_all(&dir).unwrap();
        write_config(&dir, &cfg(1, "cpu"));
        std::fs::write(dir.join("weights.safetensors"), "w").unwrap();
        assert_eq!(open(&dir, &cfg(1, "cpu"), false).unwrap(), Start::Resume);
        assert!(read_record(&dir).unwrap().is_none(), "no record begun in an old folder");
        let err = open(&dir, &cfg(2, "cpu"), true).unwrap_err().to_string();
        assert!(
            err.contains("weights.safetensors") && err.contains("written before normiqa kept a record"),
            "{err}"
        );
        assert_eq!(entries(&dir).unwrap(), ["config.toml", "weights.safetensors"]);
    }

    #[test]
    fn a_held_lock_refuses_and_names_the_holder_a_stale_file_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let held = Lock::acquire(&dir).unwrap();
        let err = open(&dir, &cfg(1, "cpu"), false).unwrap_err().to_string();
        assert!(
            err.contains("being written by another normiqa process")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        // What a killed process leaves: the file, with its text, but no lock.
        std::fs::write(dir.join(LOCK), "pid 999999: normiqa train").unwrap();
        std::fs::write(dir.join(".run.json.x1.normiqa-tmp.json"), "partial").unwrap();
        assert_eq!(open(&dir, &cfg(1, "cpu"), false).unwrap(), Start::Fresh);
        assert!(!dir.join(".run.json.x1.normiqa-tmp.json").exists());
    }
}
