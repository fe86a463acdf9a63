//! The image files a scoring command works on: files and folders as given, quoted glob patterns
//! (`'photos/**/*.jpg'`), and lists of paths (`--files-from FILE|-`). Folders are walked with
//! `walkdir`, following symbolic links with loop detection; every file is kept once (the same
//! file reached through two names, a link or a hard link counts once, under the first name in
//! sorted order); the list is sorted by name. [`shard`] then picks one part of it.

pub mod shard;

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// File extensions (lower case) that folders are searched for.
pub const EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"];

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("no such file or folder: {0}")]
    Missing(String),
    #[error("the pattern '{0}' matches no file or folder")]
    NoMatch(String),
    #[error("'{pattern}' is not a valid glob pattern: {msg}")]
    BadPattern { pattern: String, msg: String },
    #[error("{list} line {line}: no such file or folder: {path}")]
    ListedMissing {
        list: String,
        line: usize,
        path: String,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InputError + '_ {
    move |source| InputError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Identity of a file on disk: device and inode on Unix (hard links and symbolic links to one
/// file are one file), the canonical path elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileId(Id);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Id {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg(not(unix))]
    Path(PathBuf),
}

impl FileId {
    /// The identity of the file `path` names (links followed).
    pub fn of(path: &Path) -> std::io::Result<FileId> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(path)?;
            Ok(FileId(Id::Inode(m.dev(), m.ino())))
        }
        #[cfg(not(unix))]
        {
            Ok(FileId(Id::Path(std::fs::canonicalize(path)?)))
        }
    }
}

/// The files to score, sorted by name, each file once, with their identities.
#[derive(Debug, Default)]
pub struct Collected {
    pub files: Vec<PathBuf>,
    pub ids: HashSet<FileId>,
    /// Paths given or found more than once (under another name, or twice) that were dropped.
    pub duplicates: usize,
    /// Folder links that lead back into a folder being walked (skipped, with a warning).
    pub loops: usize,
    /// Entries of a walked folder that could not be read (a subfolder without permission, ...):
    /// each "path: why"; the walk goes on without them, and the command fails at its end, as
    /// it does for files it cannot score.
    pub unreadable: Vec<String>,
}

fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// What a walk found besides files: loops skipped and entries it could not read.
#[derive(Default)]
struct Skipped {
    loops: usize,
    unreadable: Vec<String>,
}

/// Image files under `dir` (recursive, links followed, loops skipped), in walk order. An entry
/// under `dir` that cannot be read is noted in `skipped` and the walk goes on; `dir` itself
/// unreadable is an error.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, skipped: &mut Skipped) -> Result<(), InputError> {
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() && has_image_extension(e.path()) => {
                out.push(e.into_path())
            }
            Ok(_) => {}
            Err(e) if e.loop_ancestor().is_some() => {
                skipped.loops += 1;
                tracing::warn!(
                    "skipping {}: a link back to {} (a folder loop)",
                    e.path().map(|p| p.display().to_string()).unwrap_or_default(),
                    e.loop_ancestor().unwrap().display()
                );
            }
            Err(e) => {
                let path = e.path().unwrap_or(dir).to_path_buf();
                let source = e.into_io_error().unwrap_or_else(|| std::io::Error::other("walk"));
                if source.kind() == std::io::ErrorKind::NotFound && path != dir {
                    tracing::warn!("skipping {}: a link to nothing", path.display());
                    continue;
                }
                if path == dir {
                    return Err(InputError::Io {
                        path: path.display().to_string(),
                        source,
                    });
                }
                tracing::warn!("skipping {}: {source}", path.display());
                skipped.unreadable.push(format!("{}: {source}", path.display()));
            }
        }
    }
    Ok(())
}

/// Whether `path` is a folder (`Some(true)`), another file (`Some(false)`) or does not exist
/// (`None`); an error that is not "not found" (a link loop, no permission) says so, naming it.
fn kind_of(path: &Path) -> Result<Option<bool>, InputError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m.is_dir())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Adds one input (file, folder or glob pattern) to `out`.
fn expand(input: &Path, out: &mut Vec<PathBuf>, skipped: &mut Skipped) -> Result<(), InputError> {
    let text = input.to_string_lossy();
    match kind_of(input) {
        Ok(Some(true)) => return walk(input, out, skipped),
        Ok(Some(false)) => {
            out.push(input.to_path_buf());
            return Ok(());
        }
        Ok(None) if !is_glob(&text) => return Err(InputError::Missing(input.display().to_string())),
        Err(e) if !is_glob(&text) => return Err(e),
        _ => {}
    }
    let matches = glob::glob(&text).map_err(|e| InputError::BadPattern {
        pattern: text.to_string(),
        msg: e.msg.to_string(),
    })?;
    let before = out.len();
    for m in matches {
        let p = m.map_err(|e| InputError::Io {
            path: e.path().display().to_string(),
            source: std::io::Error::new(e.error().kind(), e.error().to_string()),
        })?;
        if p.is_dir() {
            walk(&p, out, skipped)?;
        } else {
            out.push(p);
        }
    }
    if out.len() == before {
        return Err(InputError::NoMatch(text.to_string()));
    }
    Ok(())
}

/// `./a/b` → `a/b` (other paths unchanged).
fn without_leading_dot(p: PathBuf) -> PathBuf {
    if p.starts_with(".") && p != Path::new(".") {
        p.components()
            .skip_while(|c| matches!(c, std::path::Component::CurDir))
            .collect()
    } else {
        p
    }
}

/// Paths listed one per line in `list` (`-`: standard input); empty lines are skipped.
pub fn read_list(list: &Path) -> Result<Vec<(usize, PathBuf)>, InputError> {
    let reader: Box<dyn BufRead> = if list == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(list).map_err(io_err(list))?,
        ))
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(io_err(list))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if !line.is_empty() {
            out.push((i + 1, PathBuf::from(line)));
        }
    }
    Ok(out)
}

/// Every image of `inputs` (files, folders, glob patterns) and of the list `files_from` (files
/// or folders, one per line, taken literally), sorted by name, each file once.
pub fn collect(inputs: &[PathBuf], files_from: Option<&Path>) -> Result<Collected, InputError> {
    let mut found = Vec::new();
    let mut skipped = Skipped::default();
    for p in inputs {
        expand(p, &mut found, &mut skipped)?;
    }
    if let Some(list) = files_from {
        let name = if list == Path::new("-") {
            "standard input".to_string()
        } else {
            list.display().to_string()
        };
        for (line, p) in read_list(list)? {
            match kind_of(&p) {
                Ok(Some(true)) => walk(&p, &mut found, &mut skipped)?,
                Ok(Some(false)) => found.push(p),
                Ok(None) => {
                    return Err(InputError::ListedMissing {
                        list: name,
                        line,
                        path: p.display().to_string(),
                    })
                }
                Err(InputError::Io { path, source }) => {
                    return Err(InputError::Io { path: format!("{path} ({name} line {line})"), source })
                }
                Err(e) => return Err(e),
            }
        }
    }
    // `./a.jpg` and `a.jpg` are printed (and sharded) alike.
    let mut found: Vec<PathBuf> = found.into_iter().map(without_leading_dot).collect();
    found.sort();
    let mut c = Collected {
        loops: skipped.loops,
        unreadable: skipped.unreadable,
        ..Collected::default()
    };
    for p in found {
        let id = FileId::of(&p).map_err(io_err(&p))?;
        if c.ids.insert(id) {
            c.files.push(p);
        } else {
            c.duplicates += 1;
        }
    }
    Ok(c)
}
