//! `normiqa merge DIR -o all.csv`: the outputs of the shards of one job (`predict --shard I/N
//! -o DIR/...`, e.g. docs/cluster/slurm-array.sh) as one file, as one `predict` over all the
//! images writes it. Refused, naming the files: a shard missing, unfinished (`.partial`) or
//! there twice, shards of different jobs (shard counts) or of another model or options (their
//! records, [`crate::output::record`]), a row that is no score, an image twice or in the wrong
//! shard. The rows are sorted as `predict` sorts its inputs; the file is written atomically.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::predict::{Format, Heads, Row, RowWriter};
use crate::inputs::shard::Shard;
use crate::output::record::{self, describe, Record, RecordError};
use crate::output::resumable::{finite, header, jsonl_row, Layout};

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The folder of the shards' outputs (`predict --shard I/N -o DIR/FILE` for I = 0..N-1).
    /// Files there that are no output of `predict -o` (logs) are left alone.
    pub dir: PathBuf,
    /// The merged file (written atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Layout of the merged file (csv, jsonl, json). Default: the shards'. (CSV holds scores to
    /// 4 decimals, heads to 6: merged from CSV into JSON they keep those digits.)
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// One shard's output file.
struct ShardFile {
    path: PathBuf,
    record: Record,
    shard: Shard,
}

/// A row: image, score, the heads' values.
type Scores = (String, f64, Vec<f64>);

pub fn run(args: MergeArgs) -> Result<()> {
    let files = find_shards(&args.dir, &args.output)?;
    let count = check_shards(&args.dir, &files)?;
    let mut rows: Vec<Scores> = Vec::new();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for f in &files {
        for row in read_rows(f)? {
            if let Some(other) = seen.insert(row.0.clone(), f.path.clone()) {
                bail!("{} is in both {} and {}", row.0, other.display(), f.path.display());
            }
            rows.push(row);
        }
    }
    // The order of predict's inputs: by path, component by component.
    rows.sort_by(|a, b| Path::new(&a.0).cmp(Path::new(&b.0)));
    let inputs: Vec<(&str, &Path)> = files.iter().map(|f| ("shard file", f.path.as_path())).collect();
    crate::output::refuse_file_over_inputs("-o", &args.output, inputs)?;
    let mut merged = files[0].record.clone();
    merged.shard = None;
    if let Some(f) = args.format {
        merged.format = f.name().to_string();
    }
    write(&args.output, &merged, &rows)?;
    tracing::info!(
        "merged the {count} shards of {}: {} images to {}",
        args.dir.display(),
        rows.len(),
        args.output.display()
    );
    Ok(())
}

/// The shard files in `dir` (all but `output`), sorted by name; refused while any `.partial`
/// is there.
fn find_shards(dir: &Path, output: &Path) -> Result<Vec<ShardFile>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading the folder {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading the folder {}", dir.display()))?;
    paths.sort();
    let out_id = crate::inputs::FileId::of(output).ok();
    let (mut files, mut partial, mut foreign) = (Vec::new(), Vec::new(), Vec::new());
    for path in paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if !path.is_file() || crate::atomic::is_temp_name(&name) {
            continue;
        }
        if out_id.is_some() && crate::inputs::FileId::of(&path).ok() == out_id {
            // an earlier merge into the folder is left out; a shard is not written over
            if let Ok(Some(Record { shard: Some(s), .. })) = record::read(&path) {
                bail!("-o {} would write over the shard file {} (shard {s}): choose another output", output.display(), path.display());
            }
            continue;
        }
        if name.ends_with(".partial") {
            let shard = record::read(&path).ok().flatten().and_then(|r| r.shard);
            let shard = shard.map_or(String::new(), |s| format!(" (shard {s})"));
            partial.push(format!("{}{shard}", path.display()));
            continue;
        }
        match record::read(&path) {
            Ok(Some(record)) => {
                let Some(shard) = record.shard() else {
                    bail!("{} holds the scores of a whole run (no --shard): only the shards of one job may be in {}; move it away", path.display(), dir.display());
                };
                files.push(ShardFile { path, record, shard });
            }
            Ok(None) => bail!("{} is empty or still being written: wait for its task, or move it away", path.display()),
            Err(RecordError::Missing { .. }) => foreign.push(name),
            Err(e) => return Err(e.into()),
        }
    }
    if !partial.is_empty() {
        bail!(
            "unfinished shard(s): {}: their tasks were killed or are still running; run them again (they resume with --resume) and merge when they are done",
            partial.join(", ")
        );
    }
    if !foreign.is_empty() {
        tracing::info!("left alone (no output of predict -o): {}", foreign.join(", "));
    }
    if files.is_empty() {
        bail!("no shard outputs in {} (files written by predict --shard I/N -o {}/FILE)", dir.display(), dir.display());
    }
    Ok(files)
}

/// Every shard 0..N-1 once, one N, one model and options; returns N.
fn check_shards(dir: &Path, files: &[ShardFile]) -> Result<u64> {
    let first = &files[0];
    let count = first.shard.count;
    let mut by_index: HashMap<u64, &Path> = HashMap::new();
    for f in files {
        let (p, q) = (f.path.display(), first.path.display());
        if f.shard.count != count {
            bail!("{p} holds shard {} but {q} holds shard {}: the shards of two jobs are in {}; move one job's files away", f.shard, first.shard, dir.display());
        }
        if let Some(other) = by_index.insert(f.shard.index, &f.path) {
            bail!("shard {} is in both {} and {p}: move one away (a task re-run under another name?)", f.shard, other.display());
        }
        let d = first.record.differences(&f.record);
        if !d.is_empty() {
            bail!("{q} and {p} were scored with other models or options: {}", describe(&d, &format!("in {q}"), &format!("in {p}")));
        }
    }
    let missing: Vec<String> = (0..count).filter(|i| !by_index.contains_key(i)).map(|i| format!("{i}/{count}")).collect();
    if !missing.is_empty() {
        bail!("shard(s) {} missing in {}: run their tasks (or find their files) before merging", missing.join(", "), dir.display());
    }
    Ok(count)
}

/// The rows of one shard file, checked: finite scores, each image once and of this shard.
fn read_rows(f: &ShardFile) -> Result<Vec<Scores>> {
    let cols = &f.record.columns;
    let text = std::fs::read_to_string(&f.path).with_context(|| format!("reading {}", f.path.display()))?;
    let rows: Vec<(u64, Result<Scores, String>)> = match f.record.format.as_str() {
        "csv" => csv_rows(&text, cols)?,
        "jsonl" => text.lines().enumerate().skip(1).map(|(i, l)| (i as u64 + 1, jsonl_scores(l, cols))).collect(),
        "json" => json_rows(&text, cols).with_context(|| format!("reading {} as JSON", f.path.display()))?,
        other => bail!("{}: the record names the format '{other}', which merge does not read", f.path.display()),
    };
    let place = |n: u64| match f.record.format.as_str() {
        "json" => format!("{} item {n}", f.path.display()),
        _ => format!("{} line {n}", f.path.display()),
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for (n, row) in rows {
        let row = row.map_err(|m| anyhow::anyhow!("{}: {m}", place(n)))?;
        if !f.shard.owns(&row.0) {
            bail!("{}: {} is not an image of shard {} (a file of another job, or given other inputs?)", place(n), row.0, f.shard);
        }
        if let Some(first) = seen.insert(row.0.clone(), n) {
            bail!("{}: {} is listed twice (also {first})", place(n), row.0);
        }
        out.push(row);
    }
    Ok(out)
}

fn jsonl_scores(line: &str, cols: &[String]) -> Result<Scores, String> {
    let (image, v) = jsonl_row(line, cols)?;
    if image.is_empty() {
        return Err("no image name".into());
    }
    Ok((image, v[0], v[1..].to_vec()))
}

/// CSV rows after the record line and the header (which must be the record's columns).
fn csv_rows(text: &str, cols: &[String]) -> Result<Vec<(u64, Result<Scores, String>)>> {
    let body = text.split_once('\n').map_or("", |(_, rest)| rest);
    let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(body.as_bytes());
    let mut rows = Vec::new();
    let mut rec = csv::StringRecord::new();
    let mut first = true;
    loop {
        let line = r.position().line() + 1;
        if !r.read_record(&mut rec).map_err(|e| anyhow::anyhow!("line {line}: {e}"))? {
            break;
        }
        if std::mem::take(&mut first) {
            if rec.iter().ne(cols.iter().map(String::as_str)) {
                bail!("line {line}: the header is '{}', the record says '{}'", rec.iter().collect::<Vec<_>>().join(","), cols.join(","));
            }
            continue;
        }
        rows.push((line, csv_scores(&rec, cols)));
    }
    Ok(rows)
}

fn csv_scores(rec: &csv::StringRecord, cols: &[String]) -> Result<Scores, String> {
    if rec.len() != cols.len() {
        return Err(format!("{} columns where the header has {}", rec.len(), cols.len()));
    }
    if rec[0].is_empty() {
        return Err("no image name".into());
    }
    let v = rec.iter().zip(cols).skip(1).map(|(c, n)| finite(c, n)).collect::<Result<Vec<f64>, String>>()?;
    Ok((rec[0].to_string(), v[0], v[1..].to_vec()))
}

/// The items of a JSON array after its first (the record), numbered from 1 as in the file.
fn json_rows(text: &str, cols: &[String]) -> Result<Vec<(u64, Result<Scores, String>)>> {
    let items: Vec<serde_json::Value> = serde_json::from_str(text)?;
    Ok(items
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, v)| (i as u64 + 1, jsonl_scores(&v.to_string(), cols)))
        .collect())
}

/// Writes the merged file atomically: the record, then the rows as `predict` writes them.
fn write(output: &Path, merged: &Record, rows: &[Scores]) -> Result<()> {
    let format = match merged.format.as_str() {
        "json" => Format::Json,
        "jsonl" => Format::Jsonl,
        _ => Format::Csv,
    };
    let layout = match format {
        Format::Csv => Layout::Csv(merged.columns.clone()),
        _ => Layout::Jsonl,
    };
    let names = (merged.columns.len() > 2).then(|| &merged.columns[2..]);
    crate::atomic::write_with(output, |w: &mut dyn Write| -> Result<()> {
        w.write_all(header(&layout, merged).as_bytes())?;
        let mut out = RowWriter::new(Box::new(w), format, names, false)?;
        for (image, score, values) in rows {
            let heads = names.map(|names| Heads { names, values: values.clone() });
            out.write(Row { image: image.clone(), score: *score, heads })?;
        }
        out.finish()?;
        Ok(())
    })?;
    Ok(())
}
