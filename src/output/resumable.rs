//! A file of scores written atomically and resumably.
//!
//! Rows go to `OUT.partial` (locked while a process writes it) and are flushed as they are
//! scored; `OUT.partial` becomes `OUT` by a rename when the run ends, so `OUT` is always either
//! absent, the previous complete file, or the new complete file. A run that is killed leaves
//! `OUT.partial`; `--resume` continues it (or, when only `OUT` exists, continues from a copy of
//! `OUT`): a last line cut short by the kill is dropped, and the images already in the file are
//! not scored again. Without `--resume` an existing `OUT.partial` is refused rather than
//! discarded. A run that fails with nothing scored removes its `OUT.partial`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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
    done: HashSet<String>,
    /// Bytes of the header alone: a partial file no longer than this holds no score.
    header_len: u64,
    committed: bool,
    /// Written straight into `target`: a device or a pipe (`-o /dev/stdout`), which must never
    /// be replaced by a rename.
    direct: bool,
}

/// `OUT` → `OUT.partial`.
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

impl ScoresFile {
    /// A device or a pipe as `-o`: written directly (no `.partial`, no rename over it).
    fn open_direct(target: &Path, layout: &Layout, resume: bool) -> Result<Self, OutputError> {
        if resume {
            return Err(OutputError::SpecialNotResumable(target.display().to_string()));
        }
        let f = OpenOptions::new().write(true).open(target).map_err(io(target))?;
        let mut out = BufWriter::new(f);
        let header = match layout {
            Layout::Csv(cols) => format!("{}\n", cols.join(",")),
            _ => String::new(),
        };
        out.write_all(header.as_bytes()).map_err(io(target))?;
        Ok(ScoresFile {
            target: target.to_path_buf(),
            partial: target.to_path_buf(),
            out,
            done: HashSet::new(),
            header_len: header.len() as u64,
            committed: false,
            direct: true,
        })
    }

    /// Opens `target` for writing (see the module doc); with `resume`, the rows already written
    /// are kept and their keys are in [`ScoresFile::done`].
    pub fn open(target: &Path, layout: &Layout, resume: bool) -> Result<Self, OutputError> {
        if target.is_dir() {
            return Err(OutputError::IsFolder(target.display().to_string()));
        }
        if resume && *layout == Layout::Whole {
            return Err(OutputError::NotResumable);
        }
        let special = std::fs::metadata(target).is_ok_and(|m| !m.file_type().is_file());
        if special {
            return Self::open_direct(target, layout, resume);
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
        let (kept, done) = match scan(&mut f, &partial, layout) {
            Ok(r) => r,
            Err(e) => {
                if copied {
                    let _ = std::fs::remove_file(&partial);
                }
                return Err(e);
            }
        };
        f.set_len(kept).map_err(io(&partial))?;
        f.seek(SeekFrom::End(0)).map_err(io(&partial))?;
        let header = match layout {
            Layout::Csv(cols) => format!("{}\n", cols.join(",")),
            _ => String::new(),
        };
        if kept == 0 {
            f.write_all(header.as_bytes()).map_err(io(&partial))?;
        }
        Ok(ScoresFile {
            target: target.to_path_buf(),
            partial,
            out: BufWriter::new(f),
            done,
            header_len: header.len() as u64,
            committed: false,
            direct: false,
        })
    }

    /// Keys (image names) of the rows kept from an earlier run.
    pub fn done(&self) -> &HashSet<String> {
        &self.done
    }

    /// The file rows go to until [`ScoresFile::commit`].
    pub fn partial(&self) -> &Path {
        &self.partial
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
    /// A run that failed: keep `OUT.partial` if it holds scores (for `--resume`), else remove it.
    fn drop(&mut self) {
        if self.committed || self.direct {
            return;
        }
        let _ = self.out.flush();
        let len = self.out.get_ref().metadata().map(|m| m.len()).unwrap_or(0);
        if len <= self.header_len {
            let _ = std::fs::remove_file(&self.partial);
        } else {
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

/// Reads the complete rows: their total length and keys. Errors name the line that is not a row
/// of `layout`.
fn scan(f: &mut File, path: &Path, layout: &Layout) -> Result<(u64, HashSet<String>), OutputError> {
    let len = complete_len(f, path)?;
    f.seek(SeekFrom::Start(0)).map_err(io(path))?;
    let body = BufReader::new(f.take(len));
    let done = match layout {
        Layout::Csv(header) => scan_csv(body, path, header)?,
        Layout::Jsonl => scan_jsonl(body, path)?,
        Layout::Whole => HashSet::new(),
    };
    Ok((len, done))
}

fn row_err(path: &Path, line: u64, msg: impl Into<String>) -> OutputError {
    OutputError::Row {
        path: path.display().to_string(),
        line,
        msg: msg.into(),
    }
}

fn scan_csv(body: impl Read, path: &Path, header: &[String]) -> Result<HashSet<String>, OutputError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut done = HashSet::new();
    let mut rec = csv::StringRecord::new();
    let mut first = true;
    loop {
        let line = r.position().line();
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
                done.insert(rec[0].to_string());
            }
            Err(e) => return Err(row_err(path, line, e.to_string())),
        }
    }
    Ok(done)
}

fn scan_jsonl(body: impl BufRead, path: &Path) -> Result<HashSet<String>, OutputError> {
    let mut done = HashSet::new();
    for (i, line) in body.lines().enumerate() {
        let line = line.map_err(io(path))?;
        let v: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| row_err(path, i as u64 + 1, e.to_string()))?;
        let key = v.get("image").and_then(|k| k.as_str());
        let key = key.ok_or_else(|| row_err(path, i as u64 + 1, "no \"image\" field"))?;
        done.insert(key.to_string());
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_layout() -> Layout {
        Layout::Csv(vec!["image".into(), "score".into()])
    }

    /// `-o /dev/full` once renamed `/dev/full.partial` over the device (as root): a device or a
    /// pipe is written directly and stays what it was.
    #[test]
    fn a_device_is_written_directly_never_replaced() {
        use std::os::unix::fs::FileTypeExt;
        let dev = Path::new("/dev/null");
        let mut f = ScoresFile::open(dev, &csv_layout(), false).unwrap();
        writeln!(f, "a.jpg,1.0").unwrap();
        f.commit().unwrap();
        assert!(std::fs::metadata(dev).unwrap().file_type().is_char_device());
        assert!(!partial_path(dev).exists());
        let err = ScoresFile::open(dev, &csv_layout(), true).err().unwrap();
        assert!(err.to_string().contains("cannot be resumed"), "{err}");
    }

    #[test]
    fn a_cut_last_line_is_dropped_and_the_rest_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.csv");
        std::fs::write(partial_path(&out), "image,score\na.jpg,1.0\n\"b,1.jpg\",2.0\nc.j").unwrap();
        let mut f = ScoresFile::open(&out, &csv_layout(), true).unwrap();
        let mut done: Vec<_> = f.done().iter().cloned().collect();
        done.sort();
        assert_eq!(done, ["a.jpg", "b,1.jpg"]);
        writeln!(f, "c.jpg,3.0").unwrap();
        f.commit().unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, "image,score\na.jpg,1.0\n\"b,1.jpg\",2.0\nc.jpg,3.0\n");
        assert!(!partial_path(&out).exists());
    }

    #[test]
    fn without_resume_an_interrupted_run_is_refused_not_discarded() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.jsonl");
        std::fs::write(partial_path(&out), "{\"image\":\"a\",\"score\":1}\n").unwrap();
        let e = ScoresFile::open(&out, &Layout::Jsonl, false).err().unwrap();
        assert!(e.to_string().contains("--resume"), "{e}");
        assert!(partial_path(&out).exists());
        let f = ScoresFile::open(&out, &Layout::Jsonl, true).unwrap();
        assert!(f.done().contains("a"));
    }

    #[test]
    fn resume_continues_a_finished_file_and_checks_its_columns() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.csv");
        std::fs::write(&out, "image,score\na.jpg,1.0\n").unwrap();
        let f = ScoresFile::open(&out, &csv_layout(), true).unwrap();
        assert!(f.done().contains("a.jpg"));
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "image,score\na.jpg,1.0\n");
        let heads = Layout::Csv(["image", "score", "head6"].map(String::from).to_vec());
        let e = ScoresFile::open(&out, &heads, true).err().unwrap().to_string();
        assert!(e.contains("image,score") && e.contains("--all-heads"), "{e}");
        assert!(!partial_path(&out).exists(), "the copy of a refused file is removed");
        std::fs::write(&out, "image,score\na.jpg\n").unwrap();
        let e = ScoresFile::open(&out, &csv_layout(), true).err().unwrap().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_second_writer_is_refused_and_a_failed_empty_run_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("s.csv");
        let first = ScoresFile::open(&out, &csv_layout(), false).unwrap();
        let e = ScoresFile::open(&out, &csv_layout(), true).err().unwrap();
        assert!(matches!(e, OutputError::Locked { .. }), "{e}");
        drop(first);
        assert!(!partial_path(&out).exists() && !out.exists());
    }
}
