//! `normiqa predict`: the mapped quality score (fused head, k·ŷ+b on the MOS scale of the training
//! data) of every image given, or found in the folders given. Images are decoded in parallel in
//! chunks and run in batches of same-size images; an unreadable image is reported and skipped, the
//! others are still scored (the exit status is then non-zero).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rayon::prelude::*;

use super::args::parse_device;
use crate::train::{self, Inputs};
use normiqa_core::data::decode::{decode_one, Resize};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Image files and/or folders (searched recursively for jpg, jpeg, png, bmp, webp, tif, tiff).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Run directory of a trained model. Default: the model shipped with normiqa
    /// (models/clive-efficientnet-lite0), or $NORMIQA_MODEL.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Pretrained backbone weights, if not found automatically.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Also print the raw outputs of the three heads.
    #[arg(long)]
    pub all_heads: bool,
    /// Resize every image to H W before scoring (default: native size, as the reference demo).
    #[arg(long, num_args = 2, value_names = ["H", "W"])]
    pub resize: Option<Vec<u32>>,
    /// Images per forward pass; 0 = automatic (1 on CPU, 16 on CUDA).
    #[arg(long, default_value_t = 0)]
    pub batch_size: usize,
    #[command(flatten)]
    pub images: super::args::ImageArgs,
    /// Images decoded per chunk (memory bound).
    #[arg(long, default_value_t = 64)]
    pub chunk: usize,
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

const EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff"];

/// Expands folders into their image files (sorted), keeps files as given.
pub fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("no such file or folder: {}", p.display());
        }
    }
    Ok(out)
}

/// Writes rows as they are scored: CSV records, or the elements of one JSON array.
struct RowWriter {
    csv: Option<csv::Writer<Box<dyn Write>>>,
    json: Option<Box<dyn Write>>,
    n: usize,
}

impl RowWriter {
    fn new(sink: Box<dyn Write>, format: Format, all_heads: bool) -> Result<Self> {
        Ok(match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(sink);
                if all_heads {
                    w.write_record(["image", "score", "head6", "head7", "fused"])?;
                } else {
                    w.write_record(["image", "score"])?;
                }
                RowWriter {
                    csv: Some(w),
                    json: None,
                    n: 0,
                }
            }
            Format::Json => {
                let mut w = sink;
                write!(w, "[")?;
                RowWriter {
                    csv: None,
                    json: Some(w),
                    n: 0,
                }
            }
        })
    }

    fn write(&mut self, r: Row) -> Result<()> {
        if let Some(w) = &mut self.csv {
            let mut rec = vec![r.image.clone(), format!("{:.4}", r.score)];
            if let Some(h) = r.heads {
                rec.extend(h.iter().map(|v| format!("{v:.6}")));
            }
            w.write_record(&rec)?;
        } else if let Some(w) = &mut self.json {
            write!(
                w,
                "{}\n  {}",
                if self.n == 0 { "" } else { "," },
                serde_json::to_string(&r)?
            )?;
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
        if let Some(w) = &mut self.json {
            writeln!(w, "\n]")?;
        }
        self.flush()?;
        Ok(self.n)
    }
}

/// The shipped default model's folder.
pub fn default_model_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NORMIQA_MODEL") {
        return Some(PathBuf::from(p));
    }
    crate::locate::find(Path::new("models/clive-efficientnet-lite0"), |p| {
        p.join("run.json").exists()
    })
}

#[derive(serde::Serialize)]
struct Row {
    image: String,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    heads: Option<[f64; 3]>,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let dir = match &args.model {
        Some(d) => d.clone(),
        None => default_model_dir().context("no --model given and the shipped model (models/clive-efficientnet-lite0) was not found")?,
    };
    let files = collect_images(&args.inputs)?;
    if files.is_empty() {
        bail!("no images found in {:?}", args.inputs);
    }
    let tm = train::TrainedModel::load(&dir, device, args.weights.as_deref())?;
    let rules: Vec<Resize> = match &args.resize {
        Some(v) if v.len() == 2 && v[0] > 0 && v[1] > 0 => vec![Resize::Exact { h: v[0], w: v[1] }],
        Some(v) => bail!("--resize {v:?}: expected two positive numbers H W"),
        None => vec![],
    };
    let decoding = args.images.options();
    if let [Resize::Exact { h, w }] = rules[..] {
        super::args::check_resize(Some([h, w]), &decoding)?;
    }
    let sink: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = RowWriter::new(sink, args.format, args.all_heads)?;
    let mut failures = Vec::new();
    let t0 = std::time::Instant::now();
    for chunk in files.chunks(args.chunk.max(1)) {
        let decoded: Vec<_> = chunk
            .par_iter()
            .map(|p| decode_one(p, &rules, &decoding))
            .collect();
        let mut images = Vec::with_capacity(chunk.len());
        let mut names = Vec::with_capacity(chunk.len());
        for (p, r) in chunk.iter().zip(decoded) {
            match r {
                Ok(im) => {
                    images.push(im);
                    names.push(p.display().to_string());
                }
                // the error names the file
                Err(e) => failures.push(e.to_string()),
            }
        }
        let idx: Vec<usize> = (0..images.len()).collect();
        let heads = train::predict(
            &tm.model,
            &Inputs::Images(&images),
            &idx,
            crate::train::config::eval_batch_size(args.batch_size, device),
            device,
        )?;
        let mapped = tm.info.mapping[2].apply(&heads[2]);
        for (i, name) in names.into_iter().enumerate() {
            out.write(Row {
                image: name,
                score: mapped[i],
                heads: args
                    .all_heads
                    .then(|| [heads[0][i], heads[1][i], heads[2][i]]),
            })?;
        }
        // Each chunk's scores are on disk before the next chunk is decoded: an interrupted run
        // over thousands of files keeps everything scored so far.
        out.flush()?;
    }
    let n = out.finish()?;
    tracing::info!(
        "scored {} images in {:.2} s ({:.1} images/s)",
        n,
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
