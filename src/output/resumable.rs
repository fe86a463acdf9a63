//! A file of scores written atomically and resumably.
//!
//! Rows go to `OUT.partial` (locked while a process writes it) and are flushed as they are
//! scored; `OUT.partial` becomes `OUT` by a rename when the run ends, so `OUT` is always either
//! absent, the previous complete file, or the new complete file. A run that is killed leaves
//! `OUT.partial`; `--resume` continues it (or, when only `OUT` exists, continues from a copy of
//! `OUT`): a last line cut short by the kill is dropped, and the images already in the file are
//! not scored again. Without `--resume` an existing `OUT.partial` is refused rather than
//! discarded. A run that fails with nothing scored removes its `OUT.partial`.
//!
//! The file's first line is its [`Record`] (model, options, shard): a resume whose record
//! differs is refused, naming what differs. A resume reads every row and refuses, naming the
//! line, one that is not a row of this command: a score that is not a finite number (empty,
//! text, NaN), a missing or empty image name, the same image twice.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::{describe, Record, RecordError};

/// The file's format, as far as resuming needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// CSV with this header; a row's key is its first column.
    Csv(Vec<String>),
    /// One JSON object per line; a row's key is its `"image"` field.
    Jsonl,
    /// Anything else (e.g. one JSON array): written atomically, not resumable.
    Whole,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is a folder: give a file name for the output")]
    IsFolder(String),
    #[error("another process is writing {target} ({partial} is locked): wait for it, or write elsewhere")]
    Locked { target: String, partial: String },
    #[error(
        "{partial} holds the scores of an interrupted run: add --resume to continue it, or \
         delete it to start over"
    )]
    Unfinished { partial: String },
    #[error(
        "{path} has the columns '{found}' but this run writes '{expected}': resume with the same \
         options (--all-heads), or write to another file"
    )]
    Header {
        path: String,
        found: String,
        expected: String,
    },
    #[error("{path} line {line}: {msg}: it is not an output of this command; move it away or write to another file")]
    Row {
        path: String,
        line: u64,
        msg: String,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(
        "{path} was scored with other options than this run: {diffs}: resume with the same \
         --model and options, or write to another file"
    )]
    Mismatch { path: String, diffs: String },
    #[error(
        "{path} holds {found} but this run is {this}: resume a shard with the --shard it was \
         written with (a Slurm task re-submitted alone, `sbatch --array=2`, sees an array of one \
         task: set NORMIQA_SHARDS to the job's number of shards), or write to another file"
    )]
    ShardMismatch {
        path: String,
        found: String,
        this: String,
    },
    #[error("this output format cannot be resumed: use --format csv or --format jsonl with --resume")]
    NotResumable,
    #[error("{0} is not a regular file (a device or a pipe): it is written directly and cannot be resumed; drop --resume or write to a file")]
    SpecialNotResumable(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// An output file being written (see the module doc). Write rows through `Write`, then
/// [`ScoresFile::commit`].
pub struct ScoresFile {
    target: PathBuf,
    partial: PathBuf,
    out: BufWriter<File>,
    done: HashMap<String, u64>,
    /// Bytes of the header alone: a partial file no longer than this holds no score.
    header_len: u64,
    committed: bool,
    /// Written straight into `target`: a device or a pipe (`-o /dev/stdout`), which must never
    /// be replaced by a rename.
    direct: bool,
    /// The length of `partial` once opened: a run that fails before it adds a row leaves the
    /// file as it was (and removes it when it is a copy of a finished `target`, a resume of it).
    open_len: u64,
    copied: bool,
}

/// `OUT` → `OUT.partial`.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

impl ScoresFile {
    /// A device or a pipe as `-o`: written directly (no `.partial`, no rename over it).
    fn open_direct(
        target: &Path,
        layout: &Layout,
        resume: bool,
        record: &Record,
    ) -> Result<Self, OutputError> {
        if resume {
            return Err(OutputError::SpecialNotResumable(target.display().to_string()));
        }
        let f = OpenOptions::new().write(true).open(target).map_err(io(target))?;
        let mut out = BufWriter::new(f);
        let header = header(layout, record);
        out.write_all(header.as_bytes()).map_err(io(target))?;
        Ok(ScoresFile {
            target: target.to_path_buf(),
            partial: target.to_path_buf(),
            out,
            done: HashMap::new(),
            header_len: header.len() as u64,
            committed: false,
            direct: true,
            open_len: 0,
            copied: false,
        })
    }

    /// Opens `target` for writing (see the module doc), its first line `record`; with `resume`,
    /// the rows already written are kept and their keys are in [`ScoresFile::done`].
    pub fn open(
        target: &Path,
        layout: &Layout,
        resume: bool,
        record: &Record,
    ) -> Result<Self, OutputError> {
        if target.is_dir() {
            return Err(OutputError::IsFolder(target.display().to_string()));
        }
        if resume && *layout == Layout::Whole {
            return Err(OutputError::NotResumable);
        }
        let special = std::fs::metadata(target).is_ok_and(|m| !m.file_type().is_file());
        if special {
            return Self::open_direct(target, layout, resume, record);
        }
        let partial = partial_path(target);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .map_err(io(&partial))?;
        if let Err(e) = f.try_lock() {
            return Err(match e {
                std::fs::TryLockError::WouldBlock => OutputError::Locked {
                    target: target.display().to_string(),
                    partial: partial.display().to_string(),
                },
                std::fs::TryLockError::Error(e) => io(&partial)(e),
            });
        }
        let len = f.metadata().map_err(io(&partial))?.len();
        if len > 0 && !resume {
            return Err(OutputError::Unfinished {
                partial: partial.display().to_string(),
            });
        }
        let copied = len == 0 && resume && target.exists();
        if copied {
            let mut src = File::open(target).map_err(io(target))?;
            std::io::copy(&mut src, &mut f).map_err(io(&partial))?;
        }
        // What a copy of OUT holds is named as OUT in messages.
        let shown = if copied { target } else { partial.as_path() };
        let (kept, done) = match scan(&mut f, shown, layout, record) {
            Ok(r) => r,
            Err(e) => {
                if copied {
                    let _ = std::fs::remove_file(&partial);
                }
                return Err(e);
            }
        };
        // No row kept: start the file again (its record and header as this run writes them).
        let kept = if done.is_empty() { 0 } else { kept };
        f.set_len(kept).map_err(io(&partial))?;
        f.seek(SeekFrom::End(0)).map_err(io(&partial))?;
        let header = header(layout, record);
        if kept == 0 {
            f.write_all(header.as_bytes()).map_err(io(&partial))?;
            f.flush().map_err(io(&partial))?;
        }
        let open_len = f.metadata().map_err(io(&partial))?.len();
        Ok(ScoresFile {
            target: target.to_path_buf(),
            partial,
            out: BufWriter::new(f),
            done,
            header_len: header.len() as u64,
            committed: false,
            direct: false,
            open_len,
            copied,
        })
    }

    /// Keys (image names) of the rows kept from an earlier run, with their line numbers.
    pub fn done(&self) -> &HashMap<String, u64> {
        &self.done
    }

    /// The file rows go to until [`ScoresFile::commit`].
    pub fn partial(&self) -> &Path {
        &self.partial
    }

    /// The file whose rows [`ScoresFile::done`] lists (and whose line numbers it gives): `OUT`
    /// when resuming a finished `OUT`, else `OUT.partial`.
    pub fn resumed(&self) -> &Path {
        if self.copied {
            &self.target
        } else {
            &self.partial
        }
    }

    /// Flushes, syncs and renames `OUT.partial` to `OUT`.
    pub fn commit(mut self) -> Result<PathBuf, OutputError> {
        self.out.flush().map_err(io(&self.partial))?;
        if self.direct {
            self.committed = true;
            return Ok(self.target.clone());
        }
        self.out.get_ref().sync_all().map_err(io(&self.partial))?;
        std::fs::rename(&self.partial, &self.target).map_err(io(&self.target))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Write for ScoresFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl Drop for ScoresFile {
    /// A run that failed: keep `OUT.partial` if it holds scores (for `--resume`), else remove it
    /// (also a copy of a finished `OUT` that got no new row: `OUT` holds them).
    fn drop(&mut self) {
        if self.committed || self.direct {
            return;
        }
        let _ = self.out.flush();
        let len = self.out.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
        if len <= self.header_len || (self.copied && len == self.open_len) {
            let _ = std::fs::remove_file(&self.partial);
        } else if len > self.open_len {
            tracing::warn!(
                "the scores written so far are kept in {}: run the same command with --resume to \
                 continue",
                self.partial.display()
            );
        }
    }
}

/// The length of the file up to its last newline (a last line without one was cut short).
fn complete_len(f: &mut File, path: &Path) -> Result<u64, OutputError> {
    let len = f.metadata().map_err(io(path))?.len();
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start)).map_err(io(path))?;
        f.read_exact(chunk).map_err(io(path))?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The first lines of a new file: the record and, for CSV, the header.
pub fn header(layout: &Layout, record: &Record) -> String {
    match layout {
        Layout::Csv(cols) => format!("{}{}\n", record.line(), cols.join(",")),
        _ => record.line(),
    }
}

/// Checks the first line of `path` against this run's `record`.
fn check_record(first: &str, path: &Path, record: &Record) -> Result<(), OutputError> {
    let shown = path.display().to_string();
    let found = match Record::parse_line(first) {
        None => return Err(RecordError::Missing { path: shown }.into()),
        Some(Err(msg)) => return Err(RecordError::Unreadable { path: shown, msg }.into()),
        Some(Ok(r)) => r,
    };
    let diffs = record.differences(&found);
    if !diffs.is_empty() {
        let diffs = describe(&diffs, "in this run", "in the file");
        return Err(OutputError::Mismatch { path: shown, diffs });
    }
    if found.shard != record.shard {
        let what = |s: &Option<String>| match s {
            Some(s) => format!("shard {s}"),
            None => "all images (no --shard)".to_string(),
        };
        return Err(OutputError::ShardMismatch {
            path: shown,
            found: what(&found.shard),
            this: what(&record.shard),
        });
    }
    Ok(())
}

/// Reads the complete rows: their total length and keys. Errors name the line that is not a row
/// of `layout`, or the record that is not this run's.
fn scan(
    f: &mut File,
    path: &Path,
    layout: &Layout,
    record: &Record,
) -> Result<(u64, HashMap<String, u64>), OutputError> {
    let len = complete_len(f, path)?;
    if len == 0 {
        return Ok((0, HashMap::new()));
    }
    f.seek(SeekFrom::Start(0)).map_err(io(path))?;
    let mut body = BufReader::new(f.take(len));
    let mut first = String::new();
    body.read_line(&mut first).map_err(io(path))?;
    check_record(&first, path, record)?;
    let mut rows = Rows {
        path,
        done: HashMap::new(),
    };
    match layout {
        Layout::Csv(header) => scan_csv(body, header, &mut rows)?,
        Layout::Jsonl => scan_jsonl(body, &record.columns, &mut rows)?,
        Layout::Whole => {}
    }
    Ok((len, rows.done))
}

fn row_err(path: &Path, line: u64, msg: impl Into<String>) -> OutputError {
    OutputError::Row {
        path: path.display().to_string(),
        line,
        msg: msg.into(),
    }
}

/// The rows read so far: each image once.
struct Rows<'a> {
    path: &'a Path,
    done: HashMap<String, u64>,
}

impl Rows<'_> {
    fn add(&mut self, line: u64, image: &str) -> Result<(), OutputError> {
        if image.is_empty() {
            return Err(row_err(self.path, line, "no image name"));
        }
        if let Some(first) = self.done.insert(image.to_string(), line) {
            let msg = format!("{image} is listed twice (also line {first})");
            return Err(row_err(self.path, line, msg));
        }
        Ok(())
    }
}

/// A score cell: a finite number, else an error naming the line and the column.
pub fn finite(cell: &str, column: &str) -> Result<f64, String> {
    match cell.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("{column} is {v}, not a finite number")),
        Err(_) => Err(format!("{column} '{cell}' is not a number")),
    }
}

fn scan_csv(body: impl Read, header: &[String], rows: &mut Rows<'_>) -> Result<(), OutputError> {
    let path = rows.path;
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut rec = csv::StringRecord::new();
    let mut first = true;
    loop {
        // line 1 is the record
        let line = r.position().line() + 1;
        match r.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) if first => {
                first = false;
                if rec.iter().ne(header.iter().map(String::as_str)) {
                    return Err(OutputError::Header {
                        path: path.display().to_string(),
                        found: rec.iter().collect::<Vec<_>>().join(","),
                        expected: header.join(","),
                    });
                }
            }
            Ok(true) => {
                if rec.len() != header.len() {
                    let msg = format!("{} columns where the header has {}", rec.len(), header.len());
                    return Err(row_err(path, line, msg));
                }
                for (cell, col) in rec.iter().zip(header).skip(1) {
                    finite(cell, col).map_err(|m| row_err(path, line, m))?;
                }
                rows.add(line, &rec[0])?;
            }
            Err(e) => return Err(row_err(path, line, e.to_string())),
        }
    }
    Ok(())
}

/// The row of a JSON line: its image name, each of `columns` (after `image`) a finite number.
pub fn jsonl_row(line: &str, columns: &[String]) -> Result<(String, Vec<f64>), String> {
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|e| e.to_string())?;
    let image = v.get("image").and_then(|k| k.as_str());
    let image = image.ok_or("no \"image\" field")?.to_string();
    let mut values = Vec::with_capacity(columns.len());
    for c in columns.iter().skip(1) {
        match v.get(c) {
            Some(serde_json::Value::Number(n)) => values.push(n.as_f64().unwrap_or(f64::NAN)),
            Some(other) => return Err(format!("\"{c}\" is {other}, not a number")),
            None => return Err(format!("no \"{c}\" field")),
        }
    }
    if let Some(k) = v.keys().find(|k| k.as_str() != "image" && !columns.contains(k)) {
        return Err(format!("a field \"{k}\" that this run does not write"));
    }
    Ok((image, values))
}

fn scan_jsonl(body: impl BufRead, columns: &[String], rows: &mut Rows<'_>) -> Result<(), OutputError> {
    let path = rows.path;
    for (i, line) in body.lines().enumerate() {
        let line = line.map_err(io(path))?;
        // line 1 is the record
        let n = i as u64 + 2;
        let (image, _) = jsonl_row(&line, columns).map_err(|m| row_err(path, n, m))?;
        rows.add(n, &image)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(columns: &[&str], format: &str) -> Record {
        super::super::record::tests::sample(columns, format, None)
    }

    fn csv_layout() -> Layout {
        Layout::Csv(vec!["image".into(), "score".into()])
    }

    fn csv_record() -> Record {
        record(&["image", "score"], "csv")
    }

    /// The record and header of a CSV file of `csv_record()`.
    fn top() -> String {
        format!("{}image,score\n", csv_record().line())
    }

    fn keys(f: &ScoresFile) -> Vec<String> {
        let mut done: Vec<_> = f.done().keys().cloned().collect();
        done.sort();
        done
    }

    /// `-o /dev/full` once renamed `/dev/full.partial` over the device (as root): a device or a
    /// pipe is written directly and stays what it was.
    #[test]
    fn a_device_is_written_directly_never_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dev = Path::new("/dev/null");
        let mut f = ScoresFile::open(dev, &csv_layout(), false, &csv_record()).unwrap();
        writeln!(f, "a.jpg,1.0").unwrap();
        f.commit().unwrap();
        assert!(std::fs::metadata(dev).unwrap().file_type().is_char_device());
        assert!(!partial_path(dev).exists());
        let err = ScoresFile::open(dev, &csv_layout(), true, &csv_record()).err().unwrap();
        assert!(err.to_string().contains("cannot be resumed"), "{err}");
    }

    #[test]
    fn a_cut_last_line_is_dropped_and_the_rest_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.csv");
        let text = format!("{}a.jpg,1.0\n\"b,1.jpg\",2.0\nc.j", top());
        std::fs::write(partial_path(&out), text).unwrap();
        let mut f = ScoresFile::open(&out, &csv_layout(), true, &csv_record()).unwrap();
        assert_eq!(keys(&f), ["a.jpg", "b,1.jpg"]);
        assert_eq!(f.done()["b,1.jpg"], 4, "line numbers count the record and the header");
        writeln!(f, "c.jpg,3.0").unwrap();
        f.commit().unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, format!("{}a.jpg,1.0\n\"b,1.jpg\",2.0\nc.jpg,3.0\n", top()));
        assert!(!partial_path(&out).exists());
    }

    #[test]
    fn without_resume_an_interrupted_run_is_refused_not_discarded() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.jsonl");
        let rec = record(&["image", "score"], "jsonl");
        std::fs::write(partial_path(&out), format!("{}{{\"image\":\"a\",\"score\":1}}\n", rec.line())).unwrap();
        let e = ScoresFile::open(&out, &Layout::Jsonl, false, &rec).err().unwrap();
        assert!(e.to_string().contains("--resume"), "{e}");
        assert!(partial_path(&out).exists());
        let f = ScoresFile::open(&out, &Layout::Jsonl, true, &rec).unwrap();
        assert!(f.done().contains_key("a"));
    }

    #[test]
    fn resume_continues_a_finished_file_and_checks_its_columns() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.csv");
        std::fs::write(&out, format!("{}a.jpg,1.0\n", top())).unwrap();
        let f = ScoresFile::open(&out, &csv_layout(), true, &csv_record()).unwrap();
        assert!(f.done().contains_key("a.jpg"));
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("{}a.jpg,1.0\n", top()));
        let cols = ["image", "score", "head6"];
        let heads = Layout::Csv(cols.map(String::from).to_vec());
        let e = ScoresFile::open(&out, &heads, true, &record(&cols, "csv")).err().unwrap().to_string();
        assert!(e.contains("s.csv was scored with other options") && e.contains("--all-heads"), "{e}");
        assert!(!partial_path(&out).exists(), "the copy of a refused file is removed");
        std::fs::write(&out, format!("{}a.jpg\n", top())).unwrap();
        let e = ScoresFile::open(&out, &csv_layout(), true, &csv_record()).err().unwrap().to_string();
        assert!(e.contains("line 3"), "{e}");
    }

    /// Issue 26: a resume kept rows of another model or precision, and rows that were no scores.
    #[test]
    fn resume_refuses_another_record_and_rows_that_are_no_scores_naming_the_line() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.csv");
        let open = |text: String, rec: &Record| {
            std::fs::write(partial_path(&out), text).unwrap();
            ScoresFile::open(&out, &csv_layout(), true, rec).err().map(|e| e.to_string())
        };
        let mut bf16 = csv_record();
        bf16.precision = "bf16".into();
        let e = open(format!("{}a.jpg,1.0\n", top()), &bf16).unwrap();
        assert!(e.contains("--precision bf16 in this run, fp32 in the file"), "{e}");
        let mut other = csv_record();
        other.model_hash = "xxh3:fedcba9876543210".into();
        assert!(open(format!("{}a.jpg,1.0\n", top()), &other).unwrap().contains("model"));
        let e = open("image,score\na.jpg,1.0\n".into(), &csv_record()).unwrap();
        assert!(e.contains("line 1") && e.contains("no normiqa record"), "{e}");
        for (row, what) in [
            ("b.jpg,\n", "score '' is not a number"),
            ("b.jpg,high\n", "score 'high' is not a number"),
            ("b.jpg,NaN\n", "score is NaN"),
            ("b.jpg,inf\n", "score is inf"),
            ("a.jpg,2.0\n", "a.jpg is listed twice (also line 3)"),
            ("\"\",2.0\n", "no image name"),
        ] {
            let e = open(format!("{}a.jpg,1.0\n{row}", top()), &csv_record()).unwrap();
            assert!(e.contains("s.csv.partial line 4") && e.contains(what), "{row}: {e}");
        }
        let mut shard = csv_record();
        shard.shard = Some("0/1".into());
        let mut written = csv_record();
        written.shard = Some("2/4".into());
        let e = open(format!("{}image,score\na.jpg,1.0\n", written.line()), &shard).unwrap();
        assert!(e.contains("holds shard 2/4 but this run is shard 0/1"), "{e}");
    }

    #[test]
    fn resume_of_json_lines_refuses_null_missing_and_foreign_fields() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.jsonl");
        let rec = record(&["image", "score", "head6"], "jsonl");
        for (row, what) in [
            (r#"{"image":"b","score":null,"head6":1}"#, "\"score\" is null"),
            (r#"{"image":"b","score":1}"#, "no \"head6\" field"),
            (r#"{"image":"b","score":1,"head6":2,"mos":3}"#, "\"mos\""),
            (r#"{"image":"b","score":NaN,"head6":1}"#, "line 3"),
            (r#"{"image":"a","score":1,"head6":1}"#, "a is listed twice (also line 2)"),
        ] {
            let text = format!("{}{{\"image\":\"a\",\"score\":1,\"head6\":1}}\n{row}\n", rec.line());
            std::fs::write(partial_path(&out), text).unwrap();
            let e = ScoresFile::open(&out, &Layout::Jsonl, true, &rec).err().unwrap().to_string();
            assert!(e.contains("line 3") && e.contains(what), "{row}: {e}");
        }
    }

    #[test]
    fn a_second_writer_is_refused_and_a_failed_empty_run_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.csv");
        let first = ScoresFile::open(&out, &csv_layout(), false, &csv_record()).unwrap();
        let e = ScoresFile::open(&out, &csv_layout(), true, &csv_record()).err().unwrap();
        assert!(matches!(e, OutputError::Locked { .. }), "{e}");
        drop(first);
        assert!(!partial_path(&out).exists() && !out.exists());
    }
}
