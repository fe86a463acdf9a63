//! The record of a scores file: the first line of every file `predict -o` (and `merge`) writes,
//! saying which model and options gave its scores and which shard it holds, so that a resume, a
//! sibling shard and `merge` can refuse rows that came from something else.
//!
//! The record is one JSON object, `{"normiqa_predict":{...}}`, written as
//! - CSV: the first line, after `# ` (a comment line: pandas `read_csv(f, comment="#")`, or skip
//!   the first line); the header follows;
//! - JSON lines: the first line (it has no `"image"`, so readers of rows skip it);
//! - JSON: the first element of the array.
//!
//! Standard output carries no record (it is not resumed or merged).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::inputs::shard::Shard;

/// The key of the record object.
pub const KEY: &str = "normiqa_predict";

/// The version of the record's fields.
pub const VERSION: u32 = 1;

/// Which model and options scored a file, and its shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    /// The model folder as given (or the default model's folder): for people; files are
    /// compared by `model_hash`.
    pub model: String,
    /// xxh3-64 of the contents of the model's files (run.json, config.toml, weights; for an
    /// ensemble, ensemble.toml and each member's).
    pub model_hash: String,
    /// xxh3-64 of the `--weights` file, when one was given.
    pub weights_hash: Option<String>,
    /// The precision the forward passes ran at (`auto` resolved).
    pub precision: String,
    /// The test-time views (`--tta`, `--tta-crop-fraction`).
    pub tta: String,
    /// The resize rule (`--resize H W`, `--max-side N`), if any.
    pub resize: Option<String>,
    pub allow_truncated: bool,
    /// The columns of every row (`image`, `score`, and the heads with `--all-heads`).
    pub columns: Vec<String>,
    /// `csv`, `jsonl` or `json`.
    pub format: String,
    /// `I/N`, or none for a whole run (or a merge of all shards).
    pub shard: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Wrapped {
    normiqa_predict: Record,
}

/// A first line that is not a record, or a record normiqa cannot read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path} line 1: no normiqa record (the first line of a file `predict -o` writes names \
         the model and options): it was written by another program, an older normiqa or to \
         standard output; move it away or write to another file"
    )]
    Missing { path: String },
    #[error("{path} line 1: a normiqa record that cannot be read ({msg}): move it away or write to another file")]
    Unreadable { path: String, msg: String },
}

/// One field that differs between two records: (what, this value, that value).
pub type Difference = (&'static str, String, String);

impl Record {
    /// The JSON object of the record.
    pub fn json(&self) -> String {
        let w = Wrapped {
            normiqa_predict: self.clone(),
        };
        serde_json::to_string(&w).expect("a record serializes")
    }

    /// The record's line at the top of a file of `format` (`csv`, `jsonl`: with its newline;
    /// `json`: the array's opening and the record as its first element, the rows following).
    pub fn line(&self) -> String {
        match self.format.as_str() {
            "csv" => format!("# {}\n", self.json()),
            "json" => format!("[{}", self.json()),
            _ => format!("{}\n", self.json()),
        }
    }

    /// The record in a first line (CSV's `# {...}`, JSON lines' `{...}`, or a JSON array's
    /// `[` line followed by the record); `None` when the line is no record.
    pub fn parse_line(line: &str) -> Option<Result<Record, String>> {
        let t = line.trim();
        let t = t.strip_prefix('#').map(str::trim_start).unwrap_or(t);
        let t = t.strip_prefix('[').map(str::trim_start).unwrap_or(t);
        let t = t.strip_suffix(',').unwrap_or(t);
        if !t.starts_with(&format!("{{\"{KEY}\"")) {
            return None;
        }
        Some(
            serde_json::from_str::<Wrapped>(t)
                .map(|w| w.normiqa_predict)
                .map_err(|e| e.to_string()),
        )
    }

    /// The shard, if the record names one.
    pub fn shard(&self) -> Option<Shard> {
        let (i, n) = self.shard.as_deref()?.split_once('/')?;
        let (index, count) = (i.parse().ok()?, n.parse().ok()?);
        (count > 0 && index < count).then_some(Shard { index, count })
    }

    /// What gives different scores between two records: everything but the model's path as
    /// typed, the format and the shard.
    pub fn differences(&self, other: &Record) -> Vec<Difference> {
        let mut d = Vec::new();
        let mut cmp = |what, a: String, b: String| {
            if a != b {
                d.push((what, a, b));
            }
        };
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
        cmp("version", self.version.to_string(), other.version.to_string());
        if self.model_hash != other.model_hash {
            cmp("model", self.model_desc(), other.model_desc());
        }
        cmp("--weights", opt(&self.weights_hash), opt(&other.weights_hash));
        cmp("--precision", self.precision.clone(), other.precision.clone());
        cmp("--tta", self.tta.clone(), other.tta.clone());
        cmp("--resize/--max-side", opt(&self.resize), opt(&other.resize));
        cmp("--allow-truncated", self.allow_truncated.to_string(), other.allow_truncated.to_string());
        cmp("columns (--all-heads)", self.columns.join(","), other.columns.join(","));
        d
    }

    fn model_desc(&self) -> String {
        format!("{} (files {})", self.model, self.model_hash)
    }
}

/// The differences as one line: `--precision bf16 here, fp32 there; ...`.
pub fn describe(diffs: &[Difference], here: &str, there: &str) -> String {
    diffs
        .iter()
        .map(|(what, a, b)| format!("{what} {a} {here}, {b} {there}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// xxh3-64 of the contents of `files` (each with its length; a missing file counts as one
/// marker), as `xxh3:<16 hex digits>`.
pub fn hash_files(files: &[PathBuf]) -> Result<String, RecordError> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        let io = |source| RecordError::Io {
            path: f.display().to_string(),
            source,
        };
        let mut r = match std::fs::File::open(f) {
            Ok(r) => r,
            // a run folder without one of the files (e.g. no config.toml): counted as absent
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                h.update(&u64::MAX.to_le_bytes());
                continue;
            }
            Err(e) => return Err(io(e)),
        };
        let len = r.metadata().map_err(io)?.len();
        h.update(&len.to_le_bytes());
        loop {
            let n = r.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(format!("xxh3:{:016x}", h.digest()))
}

/// The most bytes of a first line read when looking for a record.
const MAX_LINE: u64 = 64 * 1024;

/// The record in the first line of the file `path`: `Ok(None)` when the file is empty or its
/// first line is not finished yet (a writer is starting), an error when it is no record.
pub fn read(path: &Path) -> Result<Option<Record>, RecordError> {
    let io = |source| RecordError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut line = String::new();
    let mut r = BufReader::new(f.take(MAX_LINE));
    match r.read_line(&mut line) {
        Ok(_) => {}
        // not text: no record
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => line.clear(),
        Err(e) => return Err(io(e)),
    }
    if line.is_empty() || !line.ends_with('\n') && line.len() < MAX_LINE as usize && line.starts_with(['#', '{', '[']) {
        return Ok(None);
    }
    match Record::parse_line(&line) {
        Some(Ok(rec)) => Ok(Some(rec)),
        Some(Err(msg)) => Err(RecordError::Unreadable {
            path: path.display().to_string(),
            msg,
        }),
        None => Err(RecordError::Missing {
            path: path.display().to_string(),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record of made-up values (also the fixture of `resumable`'s tests).
    pub(crate) fn sample(columns: &[&str], format: &str, shard: Option<&str>) -> Record {
        Record {
            version: VERSION,
            model: "models/m".into(),
            model_hash: "xxh3:0123456789abcdef".into(),
            weights_hash: None,
            precision: "fp32".into(),
            tta: "none".into(),
            resize: None,
            allow_truncated: false,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            format: format.into(),
            shard: shard.map(str::to_string),
        }
    }

    fn record(format: &str) -> Record {
        sample(&["image", "score"], format, Some("2/4"))
    }

    #[test]
    fn the_record_reads_back_from_the_first_line_of_every_format() {
        for format in ["csv", "jsonl", "json"] {
            let r = record(format);
            let first = r.line().lines().last().unwrap().to_string();
            let back = Record::parse_line(&first).unwrap().unwrap();
            assert_eq!(back, r, "{format}: {first}");
            assert_eq!(back.shard(), Some(Shard { index: 2, count: 4 }));
        }
        let csv = record("csv").line();
        assert!(csv.starts_with("# {\"normiqa_predict\":{"), "{csv}");
        assert!(Record::parse_line("image,score").is_none());
        assert!(Record::parse_line("{\"image\":\"a.png\",\"score\":1}").is_none());
        assert!(matches!(Record::parse_line("# {\"normiqa_predict\":{\"version\":1}}"), Some(Err(_))));
    }

    #[test]
    fn differences_name_the_options_and_ignore_path_format_and_shard() {
        let a = record("csv");
        let mut b = record("jsonl");
        b.model = "/elsewhere/m".into();
        b.shard = Some("1/4".into());
        assert!(a.differences(&b).is_empty());
        b.precision = "bf16".into();
        b.columns.push("head6".into());
        let d = describe(&a.differences(&b), "here", "there");
        assert!(d.contains("--precision fp32 here, bf16 there"), "{d}");
        assert!(d.contains("--all-heads"), "{d}");
    }

    #[test]
    fn a_file_without_a_record_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("s.csv");
        std::fs::write(&p, "image,score\na.png,1.0\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("s.csv line 1") && e.contains("no normiqa record"), "{e}");
        std::fs::write(&p, "").unwrap();
        assert!(read(&p).unwrap().is_none());
        std::fs::write(&p, "# {\"normiqa_pre").unwrap();
        assert!(read(&p).unwrap().is_none(), "a first line being written");
        std::fs::write(&p, record("csv").line() + "image,score\n").unwrap();
        assert_eq!(read(&p).unwrap(), Some(record("csv")));
    }
}
