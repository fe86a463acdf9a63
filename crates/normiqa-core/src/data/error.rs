//! One error type for every dataset loader, split and decoder. Messages name the file, the
//! row (1-based line of the file), the column or the command-line option involved.

use std::path::PathBuf;

use super::rows::Place;

/// Errors of [`crate::data`].
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file not found ({what})")]
    MissingFile { path: PathBuf, what: String },
    #[error("{root}: {msg}")]
    Layout { root: PathBuf, msg: String },
    #[error("{path}{}: CSV error: {source}", row_suffix(*.row))]
    Csv {
        path: PathBuf,
        row: Option<u64>,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: missing column `{column}` (header has: {header})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        header: String,
    },
    #[error("{path}, row {row}, column `{column}`: {msg} (value: '{value}')")]
    BadValue {
        path: PathBuf,
        row: u64,
        column: String,
        value: String,
        msg: String,
    },
    #[error("{path}, line {line}: {msg}")]
    BadLine {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    #[error("{path}: MATLAB file: {msg}")]
    Mat { path: PathBuf, msg: String },
    #[error("{path}: {} image(s) of the dataset are not listed: {}", .names.len(), list_names(.names))]
    NotListed { path: PathBuf, names: Vec<String> },
    #[error("{path}: {msg}")]
    Inconsistent { path: PathBuf, msg: String },
    #[error(
        "the {set} set would be empty with {n} items (--train-ratio {train}, --train-val-ratio {train_val}); {hint}"
    )]
    EmptySet {
        set: &'static str,
        n: usize,
        train: f64,
        train_val: f64,
        hint: &'static str,
    },
    #[error("invalid ratios (--train-ratio {train}, --train-val-ratio {train_val}): {msg}")]
    BadRatios {
        train: f64,
        train_val: f64,
        msg: String,
    },
    #[error("invalid split: {0}")]
    BadSplit(String),
    #[error("sample {index} ({name}) has no reference image; a split by reference needs one for every sample")]
    MissingReference { index: usize, name: String },
    #[error("{path}: cannot decode image: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error(
        "{path}, {at}: image path {name} leaves the image folder {}; fix the path, or pass \
         --allow-outside-root (data config: allow_outside_root = true) to accept it",
        root.display()
    )]
    OutsideRoot {
        path: PathBuf,
        at: Place,
        name: String,
        root: PathBuf,
    },
    #[error(
        "{path}: {first} and {at} both list image {name}; remove one, or pass --drop-duplicates \
         (data config: drop_duplicates = true) to keep the first"
    )]
    Duplicate {
        path: PathBuf,
        first: Place,
        at: Place,
        name: String,
    },
    #[error(
        "{path}: the image declares {width}x{height} = {} pixels, more than the limit of \
         {limit} (a decompression bomb?); pass --max-image-pixels N to raise the limit \
         (0 = no limit)",
        u64::from(*.width) * u64::from(*.height)
    )]
    TooManyPixels {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: u64,
    },
    #[error(
        "{path}: truncated or corrupt JPEG: {detail}; pass --allow-truncated to score the part \
         that is there (the rest comes out grey)"
    )]
    Truncated { path: PathBuf, detail: String },
    #[error(
        "{path}: truncated or corrupt {format}: {detail}; refused (only JPEGs can be scored \
         partly, with --allow-truncated)"
    )]
    Incomplete {
        path: PathBuf,
        format: &'static str,
        detail: String,
    },
    #[error("{path}: {detail}")]
    Ancillary { path: PathBuf, detail: String },
    #[error("{path}: cannot resize image to {h}x{w}: {msg}")]
    Resize {
        path: PathBuf,
        h: u32,
        w: u32,
        msg: String,
    },
}

fn row_suffix(row: Option<u64>) -> String {
    match row {
        Some(r) => format!(", row {r}"),
        None => String::new(),
    }
}

fn list_names(names: &[String]) -> String {
    const MAX: usize = 10;
    let mut s = names
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX {
        s.push_str(&format!(", ... ({} more)", names.len() - MAX));
    }
    s
}

/// Result of [`crate::data`] functions.
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.into();
    move |source| DataError::Io { path, source }
}
