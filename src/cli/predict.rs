//! `normiqa predict`: the mapped quality score (fused head, k·ŷ+b on the MOS scale of the training
//! data) of every image given, or found in the folders given. Images are decoded in parallel in
//! chunks and run in batches of same-size images; an unreadable image is reported and skipped, the
//! others are still scored (the exit status is then non-zero). Which images: [`crate::inputs`]
//! (folders, globs, `--files-from`, `--shard`); how the output is written and resumed:
//! [`crate::output::resumable`].

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use super::args::parse_device;
use crate::inputs::shard::{Shard, ShardSpec};
use crate::inputs::FileId;
use crate::output::resumable::{Layout, ScoresFile};
use crate::output::{refuse_file_over_ids, refuse_file_over_inputs};
use crate::model::pool::{Pool, PoolConfig};
use normiqa_core::data::decode::Resize;

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
    /// the images it does not have yet, and append them.
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
    /// Numeric precision of the forward pass: auto (bf16 on CPUs with AVX-512 BF16, else fp32),
    /// fp32, or bf16 (1.6x faster on such CPUs; the shipped model's CLIVE test SROCC moves by
    /// under 0.003, RESULTS.md).
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: crate::model::Precision,
    #[command(flatten)]
    pub tta: super::args::TtaArgs,
    /// Write to this file instead of standard output (through FILE.partial, renamed when done).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
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
fn columns(heads: Option<&[String]>) -> Vec<String> {
    let mut cols = vec!["image".to_string(), "score".to_string()];
    cols.extend(heads.unwrap_or(&[]).iter().cloned());
    cols
}

/// Writes rows as they are scored: CSV records, JSON lines, or the elements of one JSON array.
/// The same names in all: `image`, `score` and, with --all-heads, the model's head names
/// (LinearityIQA: `head6`, `head7`, `fused`).
struct RowWriter<'a> {
    csv: Option<csv::Writer<Box<dyn Write + 'a>>>,
    json: Option<Box<dyn Write + 'a>>,
    lines: bool,
    n: usize,
}

impl<'a> RowWriter<'a> {
    /// `header`: write the CSV header (a [`ScoresFile`] writes its own).
    fn new(
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
                write!(j, "[")?;
                w.json = Some(j);
            }
            Format::Jsonl => w.json = Some(sink),
        }
        Ok(w)
    }

    fn write(&mut self, r: Row<'_>) -> Result<()> {
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

    fn flush(&mut self) -> Result<()> {
        if let Some(w) = &mut self.csv {
            w.flush()?;
        } else if let Some(w) = &mut self.json {
            w.flush()?;
        }
        Ok(())
    }

    /// Closes the output (the JSON array's bracket); returns the number of rows written.
    fn finish(mut self) -> Result<usize> {
        if let (Some(w), false) = (&mut self.json, self.lines) {
            writeln!(w, "\n]")?;
        }
        self.flush()?;
        Ok(self.n)
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
    let has_run = |p: &Path| p.join("run.json").exists() || crate::model::ensemble::is_ensemble(p);
    crate::locate::find(rel, has_run).or_else(|| crate::locate::installed(rel, has_run))
}

#[derive(serde::Serialize)]
struct Row<'a> {
    image: String,
    score: f64,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    heads: Option<Heads<'a>>,
}

/// The raw outputs of the model's heads (before the mapping), named as the CSV columns.
struct Heads<'a> {
    names: &'a [String],
    values: Vec<f64>,
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
    /// What the model was trained on ([`crate::train::RunInfo::training_images`]).
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
/// this shard's part. Also returns the identities of all input images.
fn select_images(args: &PredictArgs) -> Result<(Vec<(PathBuf, String)>, HashSet<FileId>)> {
    let found = crate::inputs::collect(&args.inputs, args.files_from.as_deref())?;
    if found.files.is_empty() {
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
    if let Some(spec) = args.shard {
        let shard: Shard = spec.resolve()?;
        files.retain(|(_, name)| shard.owns(name));
        tracing::info!("shard {shard}: {} of the {n} images", files.len());
    }
    Ok((files, found.ids))
}

/// Opens `-o` (refusing to write over an input) and drops from `files` what it already holds.
fn open_output(
    args: &PredictArgs,
    model: &Path,
    heads: Option<&[String]>,
    ids: &HashSet<FileId>,
    files: &mut Vec<(PathBuf, String)>,
) -> Result<Option<ScoresFile>> {
    let Some(p) = &args.output else {
        return Ok(None);
    };
    refuse_file_over_ids("-o", p, "input image", ids)?;
    let model_files = crate::model::ensemble::model_files(model);
    let mut inputs: Vec<(&str, &Path)> = model_files.iter().map(|f| ("model file", f.as_path())).collect();
    inputs.extend(args.files_from.as_deref().map(|f| ("--files-from list", f)));
    inputs.extend(args.weights.as_deref().map(|f| ("--weights file", f)));
    refuse_file_over_inputs("-o", p, inputs)?;
    let layout = match args.layout() {
        Format::Csv => Layout::Csv(columns(heads)),
        Format::Jsonl => Layout::Jsonl,
        Format::Json => Layout::Whole,
    };
    let file = ScoresFile::open(p, &layout, args.resume)?;
    if !file.done().is_empty() {
        let before = files.len();
        files.retain(|(_, name)| !file.done().contains(name));
        tracing::info!(
            "resuming {}: {} of {before} images already scored, {} to score",
            p.display(),
            before - files.len(),
            files.len()
        );
    }
    Ok(Some(file))
}

pub fn run(args: PredictArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let tta = args.tta.test_time()?;
    let dir = model_dir_or_default(&args.model)?;
    let (mut files, ids) = select_images(&args)?;
    let info = crate::model::ensemble::load_info(&dir)?;
    let heads = args.all_heads.then_some(info.heads.as_slice());
    let rules = resize_rules(&args)?;
    let decoding = args.images.options();
    if let [Resize::Exact { h, w }] = rules[..] {
        super::args::check_resize(Some([h, w]), &decoding)?;
    }
    let mut file = open_output(&args, &dir, heads, &ids, &mut files)?;
    let (workers, threads) = PoolConfig::layout(device, args.precision, args.workers);
    let pool = Pool::start(PoolConfig {
        model: dir.clone(),
        weights: args.weights.clone(),
        device,
        precision: args.precision,
        tta,
        workers,
        threads,
        batch: crate::train::config::eval_batch_size(args.batch_size, device),
        resize: rules,
        decoding,
    })?;
    tracing::info!(
        "scores: {} ({} forward passes, --tta {}, {} worker(s) of {} thread(s))",
        info.score_scale(),
        pool.precision,
        tta,
        pool.workers,
        threads
    );
    let dest = destination(&args.output);
    let header = file.is_none();
    let sink: Box<dyn Write> = match file.as_mut() {
        Some(f) => Box::new(f),
        None => Box::new(std::io::stdout().lock()),
    };
    let writing = || format!("writing the scores to {dest}");
    let mut out = RowWriter::new(sink, args.layout(), heads, header).with_context(writing)?;
    let mut failures = Vec::new();
    let mut sizes = SizeWarnings::new(info.training_images());
    let t0 = std::time::Instant::now();
    let bar = crate::progress::bar(files.len() as u64, "scoring");
    let job = args.chunk.max(1).div_ceil(pool.workers);
    pool.score(&files, job, |rows| {
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
                        heads: heads.map(|names| Heads { names, values }),
                    })
                    .with_context(writing)?;
                }
                // the error names the file
                Err(e) => failures.push(e),
            }
        }
        // Each job's scores are on disk as soon as it is done: an interrupted run over
        // thousands of files keeps everything scored so far.
        out.flush().with_context(writing)
    })?;
    drop(pool);
    bar.finish_and_clear();
    let n = out.finish().with_context(writing)?;
    sizes.report();
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
