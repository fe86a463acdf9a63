//! `normiqa predict`: the mapped quality score (fused head, k·ŷ+b on the MOS scale of the training
//! data) of every image given, or found in the folders given. Images are decoded in parallel in
//! chunks and run in batches of same-size images; an unreadable image is reported and skipped, the
//! others are still scored (the exit status is then non-zero). Which images: [`crate::inputs`]
//! (folders, globs, `--files-from`, `--shard`); how the output is written and resumed:
//! [`crate::output::resumable`].

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use super::args::parse_device;
use crate::inputs::shard::{Shard, ShardSpec};
use crate::inputs::FileId;
use crate::output::record::{describe, Record};
use crate::output::resumable::{Layout, ScoresFile};
use crate::output::{refuse_file_over_ids, refuse_file_over_inputs};
use crate::infer::pool::{Pool, PoolConfig};
use normiqa_core::data::decode::{DecodeOptions, Resize};
use tch::Device;
use crate::infer::TestTime;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A header, then one row per image (image, score).
    Csv,
    /// One JSON array.
    Json,
    /// One JSON object per line (streams; resumable).
    Jsonl,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Image files, folders (searched recursively for jpg, jpeg, png, bmp, webp, tif, tiff;
    /// links followed, loops skipped) and quoted glob patterns ('photos/**/*.jpg'). A file
    /// reached twice (links, repeated paths) is scored once.
    #[arg(required_unless_present = "files_from")]
    pub inputs: Vec<PathBuf>,
    /// Also score the files or folders listed in FILE, one path per line ('-': standard input).
    #[arg(long, value_name = "FILE|-")]
    pub files_from: Option<PathBuf>,
    /// Score only part I of N (0 <= I < N) of the images: a file's part is a hash of its name
    /// as printed, so N processes given the same inputs score every image exactly once. 'auto'
    /// reads JOB_COMPLETION_INDEX with NORMIQA_SHARDS (Kubernetes Indexed Job) or
    /// SLURM_ARRAY_TASK_ID/_MIN/_STEP/_COUNT (Slurm job array).
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<ShardSpec>,
    /// Continue an interrupted or finished output (-o, csv or jsonl): keep its rows, score only
    /// the images it does not have yet, and append them. Refused when the file's first line
    /// (its record: model, options, shard) is not this run's, or a row is no score of it.
    #[arg(long, requires = "output")]
    pub resume: bool,
    /// Run directory of a trained model, or an ensemble folder (ensemble.toml). Default: the
    /// model shipped with normiqa (models/clive-efficientnet-lite012, the mean of three
    /// EfficientNet-Lite models), or $NORMIQA_MODEL; models/clive-efficientnet-lite0 alone is
    /// about 4x faster and less accurate.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Pretrained backbone weights, if not found automatically.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Layout of the scores.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// The same as --format json (one JSON array), as the other commands' --json.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Also print the raw outputs of the three heads.
    #[arg(long)]
    pub all_heads: bool,
    /// Resize every image to H W before scoring (default: native size, as the reference demo).
    #[arg(long, num_args = 2, value_names = ["H", "W"], conflicts_with = "max_side")]
    pub resize: Option<Vec<u32>>,
    /// Downscale images whose longer side exceeds N pixels to N, keeping the aspect ratio
    /// (antialiased bilinear, as PIL; smaller images are left as they are). Bounds time and
    /// memory for large photos: e.g. 1024.
    #[arg(long, value_name = "N")]
    pub max_side: Option<u32>,
    /// The most memory, in MB, that scoring one image may take by normiqa's estimate (from its
    /// size after --resize/--max-side, the model's backbone and --tta views); a larger image is
    /// refused, naming the file and the --max-side that fits it, instead of letting libtorch
    /// allocate until the system kills the process. Default: half of this machine's memory (its
    /// cgroup limit if lower). 0 = no limit.
    #[arg(long, value_name = "MB")]
    pub max_image_memory: Option<u64>,
    /// Images per forward pass; 0 = automatic (1 on CPU, 16 on CUDA).
    #[arg(long, default_value_t = 0)]
    pub batch_size: usize,
    #[command(flatten)]
    pub images: super::args::ImageArgs,
    /// Images decoded per chunk (memory bound), shared out among the workers.
    #[arg(long, default_value_t = 64)]
    pub chunk: usize,
    /// Inference workers, each with its own copy of the model, decoding and scoring its own
    /// images; 0 = automatic (bf16 on the CPU: one per core up to 8; otherwise one with all
    /// the cores).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// cpu, cuda, cuda:N or auto (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Numeric precision of the forward pass: auto (bf16 where measured faster: AMD CPUs with
    /// AVX-512 BF16; else fp32), fp32, bf16 (1.6x faster on Zen 4/5; the shipped model's CLIVE test SROCC moves by
    /// under 0.003, RESULTS.md), or int8 (EfficientNet-Lite models: the fastest, scores about
    /// 1.3 MOS points from fp32's on average; never chosen by auto, RESULTS.md "int8").
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: crate::model::Precision,
    #[command(flatten)]
    pub tta: super::args::TtaArgs,
    /// Write to this file instead of standard output (through FILE.partial, renamed when done).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

impl Format {
    /// The option value (`csv`, `json`, `jsonl`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
        }
    }
}

impl PredictArgs {
    /// The layout asked for: --format, or json with --json.
    pub fn layout(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
}

/// Shown under `normiqa predict --help`: what the numbers mean.
pub const SCORE_HELP: &str =
    "Scores are on the MOS scale of the model's training data (its k·ŷ+b mapping). \
The shipped default model (models/clive-efficientnet-lite012: the mean of three EfficientNet-Lite \
models; --model models/clive-efficientnet-lite0 is about 4x faster, less accurate) gives CLIVE MOS: \
about 0-100, higher is better (CLIVE photos range from about 3 to 92). It was trained on 500x500 photos: images under \
128 px on a side score unreliably (a warning says so), and images over 2000 px are slow and need \
gigabytes at native size (a warning suggests --max-side).";

/// Sides (pixels) beyond which a warning says the image is far from what the model was trained on.
const TINY_SIDE: u32 = 128;
const HUGE_SIDE: u32 = 2000;

/// The CSV columns.
/// The CSV columns: `image`, `score` and, with `--all-heads`, the model's head names.
pub(crate) fn columns(heads: Option<&[String]>) -> Vec<String> {
    let mut cols = vec!["image".to_string(), "score".to_string()];
    cols.extend(heads.unwrap_or(&[]).iter().cloned());
    cols
}

/// Writes rows as they are scored: CSV records, JSON lines, or the elements of one JSON array.
/// The same names in all: `image`, `score` and, with --all-heads, the model's head names
/// (LinearityIQA: `head6`, `head7`, `fused`).
pub(crate) struct RowWriter<'a> {
    csv: Option<csv::Writer<Box<dyn Write + 'a>>>,
    json: Option<Box<dyn Write + 'a>>,
    lines: bool,
    n: usize,
    /// Elements of the JSON array before the first row (the record).
    skip: usize,
}

impl<'a> RowWriter<'a> {
    /// `header`: write the CSV header or the JSON array's opening; without, the file's first
    /// lines were written before (a [`ScoresFile`]'s record and header: for JSON the array is
    /// open and holds the record, so every row follows a comma).
    pub(crate) fn new(
        sink: Box<dyn Write + 'a>,
        format: Format,
        heads: Option<&[String]>,
        header: bool,
    ) -> Result<Self> {
        let mut w = RowWriter {
            csv: None,
            json: None,
            lines: format == Format::Jsonl,
            n: 0,
            skip: 0,
        };
        match format {
            Format::Csv => {
                let mut c = csv::Writer::from_writer(sink);
                if header {
                    c.write_record(columns(heads))?;
                }
                w.csv = Some(c);
            }
            Format::Json => {
                let mut j = sink;
                if header {
                    write!(j, "[")?;
                } else {
                    (w.n, w.skip) = (1, 1);
                }
                w.json = Some(j);
            }
            Format::Jsonl => w.json = Some(sink),
        }
        Ok(w)
    }

    pub(crate) fn write(&mut self, r: Row<'_>) -> Result<()> {
        if let Some(w) = &mut self.csv {
            let mut rec = vec![r.image.clone(), format!("{:.4}", r.score)];
            if let Some(h) = r.heads {
                rec.extend(h.values.iter().map(|v| format!("{v:.6}")));
            }
            w.write_record(&rec)?;
        } else if let Some(w) = &mut self.json {
            if self.lines {
                writeln!(w, "{}", serde_json::to_string(&r)?)?;
            } else {
                let sep = if self.n == 0 { "" } else { "," };
                write!(w, "{sep}\n  {}", serde_json::to_string(&r)?)?;
            }
        }
        self.n += 1;
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> Result<()> {
        if let Some(w) = &mut self.csv {
            w.flush()?;
        } else if let Some(w) = &mut self.json {
            w.flush()?;
        }
        Ok(())
    }

    /// Closes the output (the JSON array's bracket); returns the number of rows written.
    pub(crate) fn finish(mut self) -> Result<usize> {
        if let (Some(w), false) = (&mut self.json, self.lines) {
            writeln!(w, "\n]")?;
        }
        self.flush()?;
        Ok(self.n - self.skip)
    }
}

/// The shipped default model of `predict` and `serve`, relative to the checkout (or to
/// `PREFIX/share/normiqa` when installed; scripts/install.sh names the same folder).
pub const DEFAULT_MODEL: &str = "models/clive-efficientnet-lite012";

/// `--model` if given, else the shipped default model's folder (or an error saying it is
/// missing): `predict`'s and `serve`'s rule.
pub fn model_dir_or_default(model: &Option<PathBuf>) -> Result<PathBuf> {
    match model {
        Some(d) => Ok(d.clone()),
        None => default_model_dir().with_context(|| {
            format!("no --model given and the shipped model ({DEFAULT_MODEL}) was not found")
        }),
    }
}

/// The shipped default model's folder.
pub fn default_model_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NORMIQA_MODEL") {
        return Some(PathBuf::from(p));
    }
    let rel = Path::new(DEFAULT_MODEL);
    let has_run = |p: &Path| p.join("run.json").exists() || crate::infer::ensemble::is_ensemble(p);
    crate::locate::find(rel, has_run).or_else(|| crate::locate::installed(rel, has_run))
}

#[derive(serde::Serialize)]
pub(crate) struct Row<'a> {
    pub image: String,
    pub score: f64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub heads: Option<Heads<'a>>,
}

/// The raw outputs of the model's heads (before the mapping), named as the CSV columns.
pub(crate) struct Heads<'a> {
    pub names: &'a [String],
    pub values: Vec<f64>,
}

impl serde::Serialize for Heads<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.names.len()))?;
        for (k, v) in self.names.iter().zip(&self.values) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// "1 image", "3 images".
fn n_images(n: usize) -> String {
    format!("{n} image{}", if n == 1 { "" } else { "s" })
}

/// Where the scores go, for messages.
fn destination(output: &Option<PathBuf>) -> String {
    output
        .as_ref()
        .map_or("standard output".to_string(), |p| p.display().to_string())
}

/// The resize rules of the options.
fn resize_rules(args: &PredictArgs) -> Result<Vec<Resize>> {
    Ok(match (&args.resize, args.max_side) {
        (Some(v), _) if v.len() == 2 && v[0] > 0 && v[1] > 0 => {
            vec![Resize::Exact { h: v[0], w: v[1] }]
        }
        (Some(v), _) => bail!(
            "--resize {}: expected two positive numbers H W",
            super::args::numbers(v)
        ),
        (None, Some(0)) => bail!("--max-side 0: expected a positive number of pixels"),
        (None, Some(n)) => vec![Resize::MaxSide { n }],
        (None, None) => vec![],
    })
}

/// Images far from the sizes the model was trained on, for one warning per kind.
struct SizeWarnings {
    /// What the model was trained on ([`crate::run::RunInfo::training_images`]).
    trained_on: String,
    tiny: Vec<String>,
    huge: Vec<String>,
}

impl SizeWarnings {
    fn new(trained_on: String) -> Self {
        SizeWarnings { trained_on, tiny: Vec::new(), huge: Vec::new() }
    }

    /// Notes a decoded image (after the resize rules: `w` x `h`) whose size is unusual.
    fn note(&mut self, name: &str, w: u32, h: u32) {
        let item = format!("{name} ({w}x{h})");
        if w.min(h) < TINY_SIDE {
            self.tiny.push(item);
        } else if w.max(h) > HUGE_SIDE {
            self.huge.push(item);
        }
    }

    fn report(&self) {
        let list = |v: &[String]| {
            let mut s = v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 3 {
                s.push_str(&format!(" and {} more", v.len() - 3));
            }
            s
        };
        if !self.tiny.is_empty() {
            tracing::warn!(
                "{} under {TINY_SIDE} px on a side: {}. The model was trained on {}; scores of such small images are unreliable (they can fall far outside the scale)",
                n_images(self.tiny.len()),
                list(&self.tiny),
                self.trained_on
            );
        }
        if !self.huge.is_empty() {
            tracing::warn!(
                "{} over {HUGE_SIDE} px on a side: {}. Scored at native size, far larger than the model's training images ({}): slow and memory-hungry; --max-side 1024 downscales them first",
                n_images(self.huge.len()),
                list(&self.huge),
                self.trained_on
            );
        }
    }
}


/// The images of this run with their names as printed: all inputs, each file once, sorted, then
/// this shard's part. Also returns the identities of all input images, the shard, and the
/// entries of walked folders that could not be read (each "path: why").
fn select_images(args: &PredictArgs) -> Result<Selected> {
    let found = crate::inputs::collect(&args.inputs, args.files_from.as_deref())?;
    if found.files.is_empty() && found.unreadable.is_empty() {
        let given: Vec<String> = args.inputs.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "no images found in {}: give image files or folders holding {} files",
            given.join(", "),
            crate::inputs::EXTENSIONS.join("/")
        );
    }
    if found.duplicates > 0 {
        tracing::info!(
            "{} path(s) named a file already listed under another name: each file is scored once",
            found.duplicates
        );
    }
    let n = found.files.len();
    let mut files: Vec<(PathBuf, String)> = found
        .files
        .into_iter()
        .map(|p| {
            let name = p.display().to_string();
            (p, name)
        })
        .collect();
    let shard = args.shard.map(|spec| spec.resolve()).transpose()?;
    if let Some(shard) = shard {
        files.retain(|(_, name)| shard.owns(name));
        tracing::info!("shard {shard}: {} of the {n} images", files.len());
    }
    Ok(Selected {
        files,
        ids: found.ids,
        shard,
        unreadable: found.unreadable,
    })
}

/// The images of this run (see [`select_images`]).
struct Selected {
    files: Vec<(PathBuf, String)>,
    ids: HashSet<FileId>,
    shard: Option<Shard>,
    /// Entries of walked folders that could not be read ("path: why").
    unreadable: Vec<String>,
}

/// The resize rule of a record (`--resize H W`, `--max-side N`).
fn rule_text(rules: &[Resize]) -> Option<String> {
    rules.first().map(|r| match r {
        Resize::Exact { h, w } | Resize::IfNot { h, w } => format!("resize {h} {w}"),
        Resize::MaxSide { n } => format!("max-side {n}"),
        other => format!("{other:?}"),
    })
}

/// The record of this run's `-o` file: the model (its files' hash), the options that change the
/// scores (with the precision the workers run at), the layout and the shard.
fn record(args: &PredictArgs, dir: &Path, run: &RunOptions<'_>) -> Result<Record> {
    use crate::output::record::hash_files;
    let model_hash = hash_files(&crate::infer::ensemble::model_files(dir))?;
    let weights_hash = args.weights.as_ref().map(|w| hash_files(std::slice::from_ref(w))).transpose()?;
    Ok(Record {
        version: crate::output::record::VERSION,
        model: dir.display().to_string(),
        model_hash,
        weights_hash,
        precision: run.precision.to_string(),
        tta: run.tta.to_string(),
        resize: rule_text(run.rules),
        allow_truncated: run.decoding.allow_truncated,
        columns: columns(run.heads),
        format: args.layout().name().to_string(),
        shard: run.shard.map(|s| s.to_string()),
    })
}

/// What the record of a run says besides the model.
struct RunOptions<'a> {
    precision: crate::model::Precision,
    tta: crate::infer::TestTime,
    rules: &'a [Resize],
    decoding: normiqa_core::data::decode::DecodeOptions,
    heads: Option<&'a [String]>,
    shard: Option<Shard>,
}

/// The folder of the file `out` (`.` for a bare name).
fn folder_of(out: &Path) -> &Path {
    match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// With a shard: refuses when the folder of `-o` holds another task's output (its record's
/// shard) that belongs to another job (another shard count), holds this same shard under
/// another name, or was scored with another model or options; `merge` would refuse them
/// together. The `sbatch --array=2` case of issue 25: a task re-submitted alone is shard 0/1.
fn check_siblings(out: &Path, record: &Record) -> Result<()> {
    let Some(mine) = record.shard() else {
        return Ok(());
    };
    let dir = folder_of(out);
    let own = [out.to_path_buf(), crate::output::resumable::partial_path(out)];
    let own: Vec<_> = own.iter().filter_map(|p| p.file_name()).collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    // in name order: the message names the same file each time
    let mut entries: Vec<std::fs::DirEntry> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let n = name.to_string_lossy();
        let ours = [".csv", ".jsonl", ".json", ".partial"].iter().any(|x| n.ends_with(x));
        if own.contains(&name.as_os_str()) || !ours || crate::atomic::is_temp_name(&n) {
            continue;
        }
        let path = e.path();
        let Ok(Some(theirs)) = crate::output::record::read(&path) else {
            continue; // not an output of predict -o (or one being started)
        };
        let Some(s) = theirs.shard() else { continue };
        let (p, o) = (path.display(), out.display());
        if s.count != mine.count {
            bail!(
                "{p} holds shard {s} of a job of {} shards, but this run is shard {mine} (-o {o}): \
                 the shards in {} must be of one job. A Slurm task re-submitted alone \
                 (`sbatch --array=2`) sees an array of one task: give the job's shard count \
                 (NORMIQA_SHARDS={} with --shard auto; docs/cluster/slurm-array.sh takes SHARDS), \
                 or write to another folder",
                s.count,
                dir.display(),
                s.count
            );
        }
        let d = record.differences(&theirs);
        if !d.is_empty() {
            bail!(
                "{p} (shard {s}) was scored with other options than this run (-o {o}): {}: every \
                 shard of a job needs the same model and options (on a cluster of mixed CPUs give \
                 --precision fp32 or bf16 rather than auto), or write to another folder",
                describe(&d, "here", "there")
            );
        }
        if s == mine {
            bail!("shard {mine} is already written to {p}: this run would score it again into {o}; resume {p} instead, or write to another folder");
        }
    }
    Ok(())
}

/// The rows a resumed file keeps must be of this run's images as they are spelled now: of its
/// shard, and not an input under another spelling (it would be scored again under its new name).
fn check_kept_rows(file: &ScoresFile, sel: &Selected) -> Result<()> {
    let names: HashSet<&str> = sel.files.iter().map(|(_, n)| n.as_str()).collect();
    let mut rows: Vec<(&String, &u64)> = file.done().iter().collect();
    rows.sort_by_key(|(_, line)| **line);
    let mut seen: HashMap<FileId, (&str, u64)> = HashMap::new();
    let path = file.resumed().display();
    for (name, &line) in rows {
        if let Some(s) = sel.shard.filter(|s| !s.owns(name)) {
            bail!("{path} line {line}: {name} is not an image of shard {s}: the file holds rows of another shard; move it away or write to another file");
        }
        let Ok(id) = FileId::of(Path::new(name)) else {
            continue; // gone, or never there: kept as it is
        };
        if let Some((other, first)) = seen.insert(id.clone(), (name, line)) {
            bail!("{path} line {line}: {name} is the image {other} of line {first} under another name: each image may be listed once; move the file away or write to another file");
        }
        if !names.contains(name.as_str()) && sel.ids.contains(&id) {
            bail!("{path} line {line}: {name} is an input of this run spelled differently now: resume with the inputs spelled as when the file was written, or write to another file");
        }
    }
    Ok(())
}

/// Opens `-o` (refusing to write over an input) and drops from `files` what it already holds.
fn open_output(
    args: &PredictArgs,
    model: &Path,
    heads: Option<&[String]>,
    sel: &mut Selected,
    record: &Record,
) -> Result<Option<ScoresFile>> {
    let Some(p) = &args.output else {
        return Ok(None);
    };
    refuse_file_over_ids("-o", p, "input image", &sel.ids)?;
    let model_files = crate::infer::ensemble::model_files(model);
    let mut inputs: Vec<(&str, &Path)> = model_files.iter().map(|f| ("model file", f.as_path())).collect();
    inputs.extend(args.files_from.as_deref().map(|f| ("--files-from list", f)));
    inputs.extend(args.weights.as_deref().map(|f| ("--weights file", f)));
    refuse_file_over_inputs("-o", p, inputs)?;
    check_siblings(p, record)?;
    let layout = match args.layout() {
        Format::Csv => Layout::Csv(columns(heads)),
        Format::Jsonl => Layout::Jsonl,
        Format::Json => Layout::Whole,
    };
    let file = ScoresFile::open(p, &layout, args.resume, record)?;
    if !file.done().is_empty() {
        check_kept_rows(&file, sel)?;
        let before = sel.files.len();
        sel.files.retain(|(_, name)| !file.done().contains_key(name));
        tracing::info!(
            "resuming {}: {} of {before} images already scored, {} to score",
            p.display(),
            before - sel.files.len(),
            sel.files.len()
        );
    }
    Ok(Some(file))
}

/// Images per job of the workers: at most `--chunk` shared out among them, and few enough
/// (4, or one batch on CUDA) that each job's rows reach `OUT.partial` within seconds of the
/// run's start and of each other, so that a killed small shard keeps most of its work.
fn job_size(chunk: usize, workers: usize, batch: usize) -> usize {
    chunk.max(1).div_ceil(workers.max(1)).min(batch.max(JOB_IMAGES))
}

/// Images per job on the CPU (see [`job_size`]).
const JOB_IMAGES: usize = 4;

/// The rows' writer: into `-o` (whose record and header are written) or standard output.
fn row_writer<'a>(
    file: &'a mut Option<ScoresFile>,
    format: Format,
    heads: Option<&'a [String]>,
) -> Result<RowWriter<'a>> {
    let header = file.is_none();
    let sink: Box<dyn Write> = match file.as_mut() {
        Some(f) => Box::new(f),
        None => Box::new(std::io::stdout().lock()),
    };
    RowWriter::new(sink, format, heads, header)
}

pub fn run(args: PredictArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let tta = args.tta.test_time()?;
    let dir = model_dir_or_default(&args.model)?;
    let mut sel = select_images(&args)?;
    let info = crate::infer::ensemble::load_info(&dir)?;
    let heads = args.all_heads.then_some(info.heads.as_slice());
    let (pool, rules, decoding, threads) = start_pool(&args, &dir, device, tta)?;
    // The record names the precision the workers run at: opened once they are loaded.
    let opts = RunOptions {
        precision: pool.precision,
        tta,
        rules: &rules,
        decoding,
        heads,
        shard: sel.shard,
    };
    let rec = record(&args, &dir, &opts)?;
    let mut file = open_output(&args, &dir, heads, &mut sel, &rec)?;
    tracing::info!(
        "scores: {} ({} forward passes, --tta {}, {} worker(s) of {} thread(s); {})",
        info.score_scale(),
        pool.precision,
        tta,
        pool.workers,
        threads,
        crate::cpus::current()
    );
    let t0 = std::time::Instant::now();
    let scoring = Scoring { args: &args, heads, device, training_images: info.training_images() };
    let (n, failures) = scoring.score(&pool, &sel.files, &mut file, sel.unreadable)?;
    drop(pool);
    if let Some(f) = file {
        f.commit()?;
    }
    tracing::info!(
        "scored {} in {:.2} s ({:.1} images/s)",
        n_images(n),
        t0.elapsed().as_secs_f64(),
        n as f64 / t0.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        bail!(
            "{} image(s) could not be scored:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// The inference workers for `args`' model, with the resize rules and decoding options they
/// apply, and the threads each runs.
fn start_pool(args: &PredictArgs, dir: &Path, device: Device, tta: TestTime) -> Result<(Pool, Vec<Resize>, DecodeOptions, usize)> {
    let rules = resize_rules(args)?;
    let decoding = args.images.options();
    if let [Resize::Exact { h, w }] = rules[..] {
        super::args::check_resize(Some([h, w]), &decoding)?;
    }
    let (workers, threads) = PoolConfig::layout(device, args.precision, args.workers);
    let pool = Pool::start(PoolConfig {
        model: dir.to_path_buf(),
        weights: args.weights.clone(),
        device,
        precision: args.precision,
        tta,
        workers,
        threads,
        batch: crate::run::config::eval_batch_size(args.batch_size, device),
        resize: rules.clone(),
        decoding,
        max_image_memory: match args.max_image_memory {
            Some(mb) => mb.saturating_mul(1 << 20),
            None => crate::infer::pool::default_max_image_memory(),
        },
    })?;
    Ok((pool, rules, decoding, threads))
}

/// What the scoring loop of one `predict` needs of its run.
struct Scoring<'a> {
    args: &'a PredictArgs,
    heads: Option<&'a [String]>,
    device: Device,
    training_images: String,
}

impl Scoring<'_> {
    /// Scores `files` on `pool`, writing each job's rows as it is done; returns the rows
    /// written and the failures (the unreadable inputs first), each naming its file.
    fn score(&self, pool: &Pool, files: &[(PathBuf, String)], file: &mut Option<ScoresFile>, unreadable: Vec<String>) -> Result<(usize, Vec<String>)> {
        let args = self.args;
        let dest = destination(&args.output);
        let writing = || format!("writing the scores to {dest}");
        let mut out = row_writer(file, args.layout(), self.heads).with_context(writing)?;
        let mut failures = unreadable;
        let mut sizes = SizeWarnings::new(self.training_images.clone());
        let bar = crate::progress::bar(files.len() as u64, "scoring");
        let job = job_size(args.chunk, pool.workers, crate::run::config::eval_batch_size(args.batch_size, self.device));
        pool.score(files, job, |rows| {
            bar.inc(rows.len() as u64);
            for (name, r) in rows {
                match r {
                    Ok(s) => {
                        if args.resize.is_none() {
                            sizes.note(&name, s.width, s.height);
                        }
                        let values = s.heads;
                        out.write(Row {
                            image: name,
                            score: s.mapped,
                            heads: self.heads.map(|names| Heads { names, values }),
                        })
                        .with_context(writing)?;
                    }
                    // the error names the file
                    Err(e) => failures.push(e),
                }
            }
            // Each job's scores are on disk as soon as it is done (jobs are small: job_size): an
            // interrupted run keeps everything scored so far but the jobs in flight.
            out.flush().with_context(writing)
        })?;
        bar.finish_and_clear();
        let n = out.finish().with_context(writing)?;
        sizes.report();
        Ok((n, failures))
    }
}
