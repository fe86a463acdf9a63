//! `normiqa metrics`: SROCC, PLCC, KROCC and RMSE of any CSV of predictions and MOS, so a
//! researcher can score any model's outputs the way normiqa scores its own; also PLCC and RMSE
//! after the VQEG 4- and 5-parameter logistic mappings fitted on the file (as pyiqa reports them).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use normiqa_core::metrics::{LinearMap, Metrics};

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Predictions with MOS: a CSV with a header, or a JSON array of objects (`normiqa predict
    /// --format json` with a `mos` added to each row).
    pub csv: PathBuf,
    /// Prediction column. Default: `predicted_mos` (written by `test` and `train`), else `score`
    /// (written by `predict`).
    #[arg(long)]
    pub pred_column: Option<String>,
    /// MOS column.
    #[arg(long, default_value = "mos")]
    pub mos_column: String,
    /// Fit the least-squares line k·pred + b (eq. 17 of Norm-in-Norm) before RMSE/PLCC: on this
    /// same file, or with --fit-on on another CSV (e.g. the training set's predictions).
    #[arg(long)]
    pub fit: bool,
    /// CSV to fit the mapping on (same column names).
    #[arg(long)]
    pub fit_on: Option<PathBuf>,
    /// Apply a known mapping instead of fitting one (K may be negative: `--mapping -0.5 3`).
    /// SROCC and KROCC are never changed by a mapping; PLCC and RMSE are of the mapped scores.
    #[arg(long, num_args = 2, value_names = ["K", "B"], allow_negative_numbers = true, conflicts_with_all = ["fit", "fit_on"])]
    pub mapping: Option<Vec<f64>>,
    /// Print the metrics as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Prediction columns tried, in order, when --pred-column is not given.
const PRED_COLUMNS: [&str; 2] = ["predicted_mos", "score"];

/// A file of predictions as named columns of text cells.
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    /// JSON items are numbered from 1 ("item 3"); CSV rows count the header ("row 4").
    json: bool,
    /// Lines or items before the first row besides the header: 1 for the record of a file of
    /// `predict -o` ([`crate::output::record`]), else 0.
    skipped: usize,
}

impl Table {
    fn read(path: &Path) -> Result<Table> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        if text.trim_start().starts_with('[') {
            Self::from_json(&text).with_context(|| format!("reading {} as JSON", path.display()))
        } else {
            // The record line of `predict -o` is no row.
            let first = text.lines().next().unwrap_or("");
            match crate::output::record::Record::parse_line(first) {
                Some(_) => {
                    let rest = text.split_once('\n').map_or("", |(_, r)| r);
                    let mut t = Self::from_csv(rest).with_context(|| format!("reading {} as CSV", path.display()))?;
                    t.skipped = 1;
                    Ok(t)
                }
                None => Self::from_csv(&text).with_context(|| format!("reading {} as CSV", path.display())),
            }
        }
    }

    fn from_csv(text: &str) -> Result<Table> {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let columns = r.headers()?.iter().map(|h| h.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.with_context(|| format!("row {}", i + 2))?;
            rows.push(rec.iter().map(str::to_string).collect());
        }
        Ok(Table {
            columns,
            rows,
            json: false,
            skipped: 0,
        })
    }

    fn from_json(text: &str) -> Result<Table> {
        let mut items: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(text)
            .context("expected an array of objects, as `normiqa predict --format json` writes")?;
        // The record of `predict -o` is no row.
        let record = items.first().is_some_and(|o| o.contains_key(crate::output::record::KEY));
        if record {
            items.remove(0);
        }
        let mut columns: Vec<String> = Vec::new();
        for k in items.iter().flat_map(|o| o.keys()) {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        let cell = |v: Option<&serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        let rows = items
            .iter()
            .map(|o| columns.iter().map(|c| cell(o.get(c))).collect())
            .collect();
        Ok(Table {
            columns,
            rows,
            json: true,
            skipped: usize::from(record),
        })
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|h| h == name)
    }

    fn place(&self, i: usize) -> String {
        if self.json {
            format!("item {}", i + 1 + self.skipped)
        } else {
            format!("row {}", i + 2 + self.skipped)
        }
    }
}

/// Reads the prediction and MOS columns; errors name the file, row and column and say what is
/// missing.
pub fn read_columns(
    path: &Path,
    pred_col: Option<&str>,
    mos_col: &str,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let t = Table::read(path)?;
    let columns = t.columns.join(", ");
    let pred_col = match pred_col {
        Some(c) => c,
        None => PRED_COLUMNS
            .into_iter()
            .find(|c| t.position(c).is_some())
            .with_context(|| {
                format!(
                    "{}: no prediction column 'predicted_mos' or 'score' (columns: {columns}); name it with --pred-column",
                    path.display()
                )
            })?,
    };
    let ip = t.position(pred_col).with_context(|| {
        format!(
            "{}: no column '{pred_col}' (columns: {columns})",
            path.display()
        )
    })?;
    let im = t.position(mos_col).with_context(|| {
        format!(
            "{}: no MOS column '{mos_col}' (columns: {columns}). Metrics compare predictions with subjective scores: add each image's MOS as a column '{mos_col}' (or name the column with --mos-column){}",
            path.display(),
            if pred_col == "score" { "; `normiqa predict` writes scores only" } else { "" }
        )
    })?;
    let (mut pred, mut mos) = (Vec::new(), Vec::new());
    for (i, row) in t.rows.iter().enumerate() {
        let get = |c: usize, col: &str| -> Result<f64> {
            let s = row.get(c).map_or("", |s| s.trim());
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .with_context(|| {
                    format!(
                        "{}: {}, column '{col}': '{s}' is not a finite number",
                        path.display(),
                        t.place(i)
                    )
                })
        };
        pred.push(get(ip, pred_col)?);
        mos.push(get(im, mos_col)?);
    }
    if pred.len() < 2 {
        bail!(
            "{}: {} data row(s); need at least 2",
            path.display(),
            pred.len()
        );
    }
    Ok((pred, mos))
}

pub fn run(args: MetricsArgs) -> Result<()> {
    let pred_column = args.pred_column.as_deref();
    let (pred, mos) = read_columns(&args.csv, pred_column, &args.mos_column)?;
    let mapping = if let Some(m) = &args.mapping {
        Some(LinearMap { k: m[0], b: m[1] })
    } else if let Some(f) = &args.fit_on {
        let (p, y) = read_columns(f, pred_column, &args.mos_column)?;
        Some(
            LinearMap::fit(&p, &y)
                .with_context(|| format!("fitting the mapping on {}", f.display()))?,
        )
    } else if args.fit {
        Some(LinearMap::fit(&pred, &mos).context("fitting the mapping")?)
    } else {
        None
    };
    let m = Metrics::compute_keeping_ranks(&pred, &mos, mapping.as_ref())
        .with_context(|| format!("computing metrics of {}", args.csv.display()))?;
    let linear = mapping.map_or_else(|| pred.clone(), |mp| mp.apply(&pred));
    if args.json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"csv": args.csv, "metrics": m, "mapping": mapping,
                    "logistic": super::args::logistic_json(&linear, &mos)})
            )?
        )?;
    } else {
        crate::outln!("{}: {} rows", args.csv.display(), m.n)?;
        if let Some(mp) = &mapping {
            crate::outln!("mapping: {:.6} * pred + {:.6}", mp.k, mp.b)?;
        }
        crate::outln!(
            "SROCC {:.4}  PLCC {:.4}  KROCC {:.4}  RMSE {:.4}{}",
            m.srocc,
            m.plcc,
            m.krocc,
            m.rmse,
            if mapping.is_none() {
                " (no mapping: RMSE on the raw scale)"
            } else {
                ""
            }
        )?;
        super::args::print_logistic("predictions", &linear, &mos)?;
    }
    Ok(())
}
