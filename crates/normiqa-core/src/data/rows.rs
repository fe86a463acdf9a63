//! Checks every loader applies to the rows it reads: image paths stay inside the image folder,
//! and no image is listed twice. [`LoadOptions`] opts out of each.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::error::{DataError, Result};
use super::Sample;

/// What the loaders accept beyond their safe defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LoadOptions {
    /// Accept image paths that leave the image folder (`../x.jpg`, `/abs/x.jpg`); refused by
    /// default, so a labels file cannot make normiqa open any file of the machine.
    pub allow_outside_root: bool,
    /// Keep the first of the rows that list the same image and drop the others (each logged);
    /// by default such a file is refused, since a duplicate can put one image in two sets.
    pub drop_duplicates: bool,
}

/// Where a sample comes from in its labels file, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// 1-based line of a CSV file (the header is line 1).
    Row(u64),
    /// 1-based line of a text file.
    Line(u64),
    /// 1-based entry of a list (e.g. a MATLAB cell array).
    Entry(u64),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Row(n) => write!(f, "row {n}"),
            Place::Line(n) => write!(f, "line {n}"),
            Place::Entry(n) => write!(f, "entry {n}"),
        }
    }
}

/// True when `name`, joined to a folder, names something inside it: a relative path whose
/// `..` components never climb above the folder (checked on the text, before any file access).
pub fn stays_inside(name: &str) -> bool {
    let mut depth = 0usize;
    for c in Path::new(name).components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The resolved path of `root/name` when it lies outside the resolved `root`; `None` when it is
/// inside, or either cannot be resolved (a missing file is reported where it is opened).
fn resolved_outside(root: &Path, name: &str) -> Option<PathBuf> {
    let target = std::fs::canonicalize(root.join(name)).ok()?;
    let root = std::fs::canonicalize(root).ok()?;
    (!target.starts_with(&root)).then_some(target)
}

/// Collects the samples of one labels file, applying the checks of [`LoadOptions`].
pub(crate) struct Rows {
    file: PathBuf,
    opts: LoadOptions,
    first: HashMap<PathBuf, Place>,
    samples: Vec<Sample>,
}

impl Rows {
    pub fn new(file: &Path, opts: &LoadOptions) -> Rows {
        Rows {
            file: file.to_path_buf(),
            opts: *opts,
            first: HashMap::new(),
            samples: Vec::new(),
        }
    }

    /// `root/name`, refused when `name` leaves `root` (unless allowed).
    pub fn image_path(&self, root: &Path, name: &str, at: Place) -> Result<PathBuf> {
        self.check_inside(root, name, at)?;
        Ok(root.join(name))
    }

    /// Refuses `name` when it leaves `root` (unless allowed): by its text (`../`, an absolute
    /// path), or, for a file that exists, by its resolved path (a link inside `root` to a file
    /// outside it).
    pub fn check_inside(&self, root: &Path, name: &str, at: Place) -> Result<()> {
        if self.opts.allow_outside_root {
            return Ok(());
        }
        let refuse = |name: String| DataError::OutsideRoot {
            path: self.file.clone(),
            at,
            name,
            root: root.to_path_buf(),
        };
        if !stays_inside(name) {
            return Err(refuse(name.to_string()));
        }
        match resolved_outside(root, name) {
            Some(target) => Err(refuse(format!("{name} (a link to {})", target.display()))),
            None => Ok(()),
        }
    }

    /// Adds a sample; `Ok(false)` when it repeats an earlier row's image and duplicates are
    /// dropped, an error when they are not.
    pub fn push(&mut self, sample: Sample, at: Place) -> Result<bool> {
        if let Some(&first) = self.first.get(&sample.path) {
            if !self.opts.drop_duplicates {
                return Err(DataError::Duplicate {
                    path: self.file.clone(),
                    first,
                    at,
                    name: sample.name,
                });
            }
            tracing::warn!(
                "{}: {at} lists image {} again (first at {first}); dropped (--drop-duplicates)",
                self.file.display(),
                sample.name
            );
            return Ok(false);
        }
        self.first.insert(sample.path.clone(), at);
        self.samples.push(sample);
        Ok(true)
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn into_samples(self) -> Vec<Sample> {
        self.samples
    }
}
