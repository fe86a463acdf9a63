//! Atomic file writes. Every file that a command writes into a run folder, an experiment folder
//! or the feature cache goes first to a temporary file in the same folder
//! (`.NAME.XXXXXX.normiqa-tmp.EXT`: the final extension last, as writers such as libtorch's
//! `VarStore::save` pick the format from it), is flushed to disk, and is then renamed over its
//! final name. If
//! anything fails on the way (a full disk, an error of the code producing the contents), the
//! temporary file is removed and the final file, if there was one, is left as it was.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// The mark of normiqa's temporary files (see the module doc).
pub const TEMP_MARK: &str = ".normiqa-tmp";

/// Why an atomic write failed. In every case the temporary file is gone.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    #[error("cannot create a temporary file in {dir} to write {file}: {source}")]
    Create {
        dir: PathBuf,
        file: PathBuf,
        source: io::Error,
    },
    #[error("writing {file}: {source} (the partial file was removed; {file} is unchanged)")]
    Write {
        file: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("replacing {file}: {source} (the new contents were removed; {file} is unchanged)")]
    Persist { file: PathBuf, source: io::Error },
}

/// True for a temporary file of this module (by name).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && (name.ends_with(TEMP_MARK) || name.contains(&format!("{TEMP_MARK}.")))
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), AtomicError> {
    write_with(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically with what `produce` writes into the (buffered) temporary file.
pub fn write_with<E>(
    path: &Path,
    produce: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), AtomicError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tmp = temp_for(path)?;
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| AtomicError::Write {
        file: path.to_path_buf(),
        source: e,
    };
    {
        let mut w = BufWriter::new(tmp.as_file());
        produce(&mut w).map_err(|e| fail(e.into()))?;
        w.flush().map_err(|e| fail(e.into()))?;
    }
    finish(tmp, path)
}

/// Writes `path` atomically through a writer that only takes a path (libtorch's safetensors
/// writer, `VarStore::save`): `produce` gets the temporary file's path.
pub fn write_via_path<E>(
    path: &Path,
    produce: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), AtomicError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tmp = temp_for(path)?;
    produce(tmp.path()).map_err(|e| AtomicError::Write {
        file: path.to_path_buf(),
        source: readable(e.into()),
    })?;
    finish(tmp, path)
}

/// libtorch's safetensors writer reports I/O failures through safetensors 0.4, whose errors print
/// as Rust debug structures (`IoError(Os { code: 28, kind: StorageFull, message: "No space left
/// on device" })`): keep the operating system's message, which is what a user can act on.
fn readable(e: Box<dyn std::error::Error + Send + Sync>) -> Box<dyn std::error::Error + Send + Sync> {
    let text = e.to_string();
    let Some(start) = text.find("message: \"") else {
        return e;
    };
    let rest = &text[start + "message: \"".len()..];
    match rest.find('"') {
        Some(end) => rest[..end].to_string().into(),
        None => e,
    }
}

/// A new temporary file beside `path` (removed when dropped unless renamed).
fn temp_for(path: &Path) -> Result<NamedTempFile, AtomicError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let prefix = format!(".{name}.");
    let suffix = match path.extension() {
        Some(ext) => format!("{TEMP_MARK}.{}", ext.to_string_lossy()),
        None => TEMP_MARK.to_string(),
    };
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(&suffix);
    // The permissions of a plain new file (0666 less the umask), not tempfile's private 0600.
    #[cfg(unix)]
    b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    b.tempfile_in(dir)
        .map_err(|source| AtomicError::Create {
            dir: dir.to_path_buf(),
            file: path.to_path_buf(),
            source,
        })
}

/// Flushes the temporary file to disk (a full disk may only show here) and renames it.
fn finish(tmp: NamedTempFile, path: &Path) -> Result<(), AtomicError> {
    tmp.as_file().sync_all().map_err(|e| AtomicError::Write {
        file: path.to_path_buf(),
        source: e.into(),
    })?;
    tmp.persist(path).map_err(|e| AtomicError::Persist {
        file: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_formatted_io_errors_become_the_os_message() {
        let raw = "safetensor error: IoError(Os { code: 28, kind: StorageFull, message: \"No space left on device\" })";
        assert_eq!(readable(raw.into()).to_string(), "No space left on device");
        assert_eq!(readable("plain".into()).to_string(), "plain");
    }

    use super::*;

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Passes `room` bytes on to `inner`, then fails as a full disk does.
    struct FullDisk<'a> {
        inner: &'a mut dyn Write,
        room: usize,
    }
    impl Write for FullDisk<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = self.inner.write(&buf[..buf.len().min(self.room)])?;
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }

    #[test]
    fn a_failure_mid_write_removes_the_temporary_file_and_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run.json");
        write(&path, b"old contents").unwrap();
        let err = write_with(&path, |w| {
            // Half the new contents reach the temporary file, then the disk is full.
            let mut disk = FullDisk {
                inner: w,
                room: 50_000,
            };
            disk.write_all(&[b'x'; 100_000])?;
            disk.flush()
        })
        .unwrap_err();
        assert!(err.to_string().contains("run.json"), "{err}");
        assert!(err.to_string().contains("unchanged"), "{err}");
        assert_eq!(names(tmp.path()), ["run.json"]);
        assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
    }

    #[test]
    fn a_failing_path_writer_leaves_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("weights.safetensors");
        let err = write_via_path(&path, |p| -> io::Result<()> {
            // The final extension stays last (VarStore::save picks the format from it).
            assert_eq!(p.extension().unwrap(), "safetensors");
            assert!(is_temp_name(&p.file_name().unwrap().to_string_lossy()));
            std::fs::write(p, [0u8; 4096])?;
            Err(io::Error::from_raw_os_error(28))
        })
        .unwrap_err();
        assert!(err.to_string().contains("weights.safetensors"), "{err}");
        assert!(names(tmp.path()).is_empty(), "{:?}", names(tmp.path()));
    }

    #[test]
    fn a_complete_write_replaces_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.csv");
        write(&path, b"1").unwrap();
        write_via_path(&path, |p| std::fs::write(p, b"2")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"2");
        assert_eq!(names(tmp.path()), ["a.csv"]);
        assert!(is_temp_name(".a.csv.AbC123.normiqa-tmp.csv"));
        assert!(is_temp_name(".LICENSE.AbC123.normiqa-tmp"));
        assert!(!is_temp_name("a.csv"));
    }

    #[test]
    fn written_files_get_the_permissions_of_any_new_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (ours, plain) = (tmp.path().join("run.json"), tmp.path().join("plain"));
        write(&ours, b"{}").unwrap();
        std::fs::write(&plain, b"{}").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions();
        assert_eq!(mode(&ours), mode(&plain));
    }
}
