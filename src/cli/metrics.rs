//! `normiqa metrics`: SROCC, PLCC, KROCC and RMSE of any CSV of predictions and MOS, so a
//! researcher can score any model's outputs the way normiqa scores its own; also PLCC and RMSE
//! after the VQEG 4- and 5-parameter logistic mappings fitted on the file (as pyiqa reports them).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use normiqa_core::metrics::{LinearMap, Metrics};

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// CSV with a prediction column and a MOS column.
    pub csv: PathBuf,
    /// Prediction column.
    #[arg(long, default_value = "predicted_mos")]
    pub pred_column: String,
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
    /// Apply a known mapping instead of fitting one.
    #[arg(long, num_args = 2, value_names = ["K", "B"], conflicts_with_all = ["fit", "fit_on"])]
    pub mapping: Option<Vec<f64>>,
    #[arg(long)]
    pub json: bool,
}

/// Reads two numeric columns; errors name the file, row and column.
pub fn read_columns(path: &Path, pred_col: &str, mos_col: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = r
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .clone();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| {
                format!(
                    "{}: no column '{name}' (columns: {})",
                    path.display(),
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
    };
    let (ip, im) = (find(pred_col)?, find(mos_col)?);
    let (mut pred, mut mos) = (Vec::new(), Vec::new());
    for (row, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), row + 2))?;
        let get = |i: usize, col: &str| -> Result<f64> {
            let s = rec.get(i).unwrap_or("").trim();
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .with_context(|| {
                    format!(
                        "{}: row {}, column '{col}': '{s}' is not a finite number",
                        path.display(),
                        row + 2
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
    let (pred, mos) = read_columns(&args.csv, &args.pred_column, &args.mos_column)?;
    let mapping = if let Some(m) = &args.mapping {
        Some(LinearMap { k: m[0], b: m[1] })
    } else if let Some(f) = &args.fit_on {
        let (p, y) = read_columns(f, &args.pred_column, &args.mos_column)?;
        Some(
            LinearMap::fit(&p, &y)
                .with_context(|| format!("fitting the mapping on {}", f.display()))?,
        )
    } else if args.fit {
        Some(LinearMap::fit(&pred, &mos).context("fitting the mapping")?)
    } else {
        None
    };
    let m = Metrics::compute_mapped(&pred, &mos, mapping.as_ref())
        .with_context(|| format!("computing metrics of {}", args.csv.display()))?;
    let linear = mapping.map_or_else(|| pred.clone(), |mp| mp.apply(&pred));
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"csv": args.csv, "metrics": m, "mapping": mapping,
                    "logistic": super::args::logistic_json(&linear, &mos)})
            )?
        );
    } else {
        println!("{}: {} rows", args.csv.display(), m.n);
        if let Some(mp) = &mapping {
            println!("mapping: {:.6} * pred + {:.6}", mp.k, mp.b);
        }
        println!(
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
        );
        super::args::print_logistic("predictions", &linear, &mos);
    }
    Ok(())
}
