//! Generic CSV labels: `image,mos[,mos_std][,reference][,distortion][,level]`, column names
//! configurable with [`CsvColumns`], image paths relative to an image root.
//!
//! Also the small CSV table reader the other loaders share ([`Table`]).

use std::path::{Path, PathBuf};

use super::error::{io_err, DataError, Result};
use super::rows::{LoadOptions, Place, Rows};
use super::{Dataset, Sample};

/// Column names of a labels CSV. `image` and `mos` are required. The optional columns are read
/// when the header has them; an optional column left at its default name may be absent, but
/// one given another name (the user asked for it) must be present. `None` ignores the column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CsvColumns {
    pub image: String,
    pub mos: String,
    pub mos_std: Option<String>,
    pub reference: Option<String>,
    pub distortion: Option<String>,
    pub level: Option<String>,
}

impl Default for CsvColumns {
    /// `image`, `mos`, `mos_std`, `reference`, `distortion`, `level`.
    fn default() -> Self {
        CsvColumns {
            image: "image".into(),
            mos: "mos".into(),
            mos_std: Some("mos_std".into()),
            reference: Some("reference".into()),
            distortion: Some("distortion".into()),
            level: Some("level".into()),
        }
    }
}

/// Loads a labels CSV; sample `i` is data row `i`, its path `image_root/<image>`.
/// The dataset is named `csv:<file name>` and is higher-is-better. Image paths that leave
/// `image_root` and images listed twice are refused unless `opts` allows them.
pub fn load(
    csv_path: impl AsRef<Path>,
    image_root: impl AsRef<Path>,
    columns: &CsvColumns,
    opts: &LoadOptions,
) -> Result<Dataset> {
    let csv_path = csv_path.as_ref();
    let image_root = image_root.as_ref();
    let t = Table::read(csv_path)?;
    let defaults = CsvColumns::default();
    let opt = |given: &Option<String>, default: &Option<String>| -> Result<Option<usize>> {
        match given {
            None => Ok(None),
            Some(name) if given == default => Ok(t.opt_col(name)),
            Some(name) => t.col(name).map(Some),
        }
    };
    let c_img = t.col(&columns.image)?;
    let c_mos = t.col(&columns.mos)?;
    let c_std = opt(&columns.mos_std, &defaults.mos_std)?;
    let c_ref = opt(&columns.reference, &defaults.reference)?;
    let c_dist = opt(&columns.distortion, &defaults.distortion)?;
    let c_level = opt(&columns.level, &defaults.level)?;
    let mut samples = Rows::new(csv_path, opts);
    for row in &t.rows {
        let name = t.required_str(row, c_img)?.to_string();
        let at = Place::Row(row.line);
        let path = samples.image_path(image_root, &name, at)?;
        let mos = t.f64(row, c_mos)?;
        let mos_std = match c_std {
            Some(c) if !row.get(c).is_empty() => Some(t.f64(row, c)?),
            _ => None,
        };
        let text = |c: Option<usize>| c.map(|c| row.get(c).to_string()).filter(|s| !s.is_empty());
        let level = match c_level {
            Some(c) if !row.get(c).is_empty() => Some(t.u32(row, c)?),
            _ => None,
        };
        let sample = Sample {
            path,
            name,
            mos,
            mos_std,
            reference: text(c_ref),
            distortion: text(c_dist),
            level,
        };
        samples.push(sample, at)?;
    }
    let file = csv_path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Dataset {
        name: format!("csv:{file}"),
        samples: samples.into_samples(),
        higher_is_better: true,
    })
}

/// A CSV file read whole: header and data rows with their 1-based line numbers.
pub(crate) struct Table {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub rows: Vec<Row>,
}

pub(crate) struct Row {
    pub line: u64,
    pub record: csv::StringRecord,
}

impl Row {
    pub fn get(&self, c: usize) -> &str {
        self.record.get(c).unwrap_or("")
    }
}

impl Table {
    pub fn read(path: &Path) -> Result<Table> {
        if !path.is_file() {
            return Err(DataError::MissingFile {
                path: path.to_path_buf(),
                what: "labels CSV".into(),
            });
        }
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        let mut rdr = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(file);
        let csv_err = |e: csv::Error| DataError::Csv {
            path: path.to_path_buf(),
            row: e.position().map(|p| p.line()),
            source: e,
        };
        let headers = rdr
            .headers()
            .map_err(csv_err)?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut rows = Vec::new();
        for rec in rdr.records() {
            let record = rec.map_err(csv_err)?;
            if record.iter().all(|f| f.is_empty()) {
                continue;
            }
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            rows.push(Row { line, record });
        }
        Ok(Table {
            path: path.to_path_buf(),
            headers,
            rows,
        })
    }

    /// Index of a column: exact name first, then ASCII case-insensitive.
    pub fn opt_col(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name).or_else(|| {
            self.headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
        })
    }

    pub fn col(&self, name: &str) -> Result<usize> {
        self.opt_col(name).ok_or_else(|| DataError::MissingColumn {
            path: self.path.clone(),
            column: name.to_string(),
            header: self.headers.join(","),
        })
    }

    fn bad(&self, row: &Row, c: usize, msg: &str) -> DataError {
        DataError::BadValue {
            path: self.path.clone(),
            row: row.line,
            column: self.headers[c].clone(),
            value: row.get(c).to_string(),
            msg: msg.to_string(),
        }
    }

    pub fn required_str<'r>(&self, row: &'r Row, c: usize) -> Result<&'r str> {
        let v = row.get(c);
        if v.is_empty() {
            return Err(self.bad(row, c, "empty value"));
        }
        Ok(v)
    }

    pub fn f64(&self, row: &Row, c: usize) -> Result<f64> {
        let v = row.get(c);
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            Ok(_) => Err(self.bad(row, c, "not a finite number")),
            Err(_) => Err(self.bad(row, c, "not a number")),
        }
    }

    pub fn u32(&self, row: &Row, c: usize) -> Result<u32> {
        row.get(c)
            .parse::<u32>()
            .map_err(|_| self.bad(row, c, "not a non-negative integer"))
    }
}
