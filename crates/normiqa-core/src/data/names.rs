//! Shared helpers for synthetic-dataset loaders: file lookup tolerant of case.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Finds files in a folder by name, exactly or else ignoring ASCII case (TID2013 lists
/// `i01_01_1.bmp` where some copies hold `I01_01_1.BMP`).
pub(crate) struct Folder {
    dir: PathBuf,
    lower: HashMap<String, String>,
}

impl Folder {
    pub fn new(dir: &Path) -> Folder {
        let mut lower = HashMap::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str() {
                    lower.insert(n.to_ascii_lowercase(), n.to_string());
                }
            }
        }
        Folder {
            dir: dir.to_path_buf(),
            lower,
        }
    }

    /// Path of `name` in the folder (the listed path when nothing matches).
    pub fn path(&self, name: &str) -> PathBuf {
        let exact = self.dir.join(name);
        if exact.is_file() {
            return exact;
        }
        match self.lower.get(&name.to_ascii_lowercase()) {
            Some(actual) => self.dir.join(actual),
            None => exact,
        }
    }
}

/// The folder holding the images: the first of `candidates` (relative to `root`) that exists,
/// else `root`.
pub(crate) fn image_dir(root: &Path, candidates: &[&str]) -> PathBuf {
    candidates
        .iter()
        .map(|c| root.join(c))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| root.to_path_buf())
}

/// Splits a synthetic-dataset file name `REF_TYPE_LEVEL.ext` (KADID `I01_01_01.png`, TID2013
/// `i03_08_4.bmp`) into (reference, distortion id in 1..=n_types, level).
pub(crate) fn parse_ref_type_level(name: &str, n_types: usize) -> Option<(&str, usize, u32)> {
    let stem = super::clive::stem(name);
    let mut parts = stem.split('_');
    let (r, d, l) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || r.is_empty() {
        return None;
    }
    let d: usize = d.parse().ok()?;
    let l: u32 = l.parse().ok()?;
    (1..=n_types).contains(&d).then_some((r, d, l))
}
