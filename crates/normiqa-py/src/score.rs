//! `Scorer`: a trained model (run folder or ensemble) loaded into inference workers that score
//! image files or numpy arrays with the GIL released.
//!
//! The same steps as `normiqa predict` (src/infer/pool.rs): each worker thread loads its own
//! `TrainedModel` (precision and test-time views applied), with the intra-op thread count of
//! `PoolConfig::layout`; files are decoded with `decode_one` and the predict's resize rules;
//! batches of `eval_batch_size` same-size images go through `TrainedModel::score`. So a file
//! gets the number `normiqa predict` prints for it (tests/test_model.py checks to 1e-6).

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use image::RgbImage;
use normiqa::infer::pool::PoolConfig;
use normiqa::infer::trained::TrainedModel;
use normiqa::infer::{TestTime, Tta};
use normiqa::model::Precision;
use normiqa_core::data::decode::{decode_one, max_side_dims, resize_rgb, DecodeOptions, Resize};
use numpy::PyReadonlyArray3;
use pyo3::prelude::*;

use crate::{py_err, to_py};

/// What one item to score is.
enum Item {
    File(PathBuf),
    Array(RgbImage),
}

/// Per item: the score, or why not (the message names the item).
type Outcome = Vec<Result<f64, String>>;

struct Job {
    items: Vec<(String, Item)>,
    reply: mpsc::Sender<(usize, Outcome)>,
    id: usize,
}

/// What every worker loads and how it scores.
#[derive(Clone)]
struct Setup {
    model: PathBuf,
    device: tch::Device,
    precision: Precision,
    tta: TestTime,
    threads: usize,
    batch: usize,
    resize: Vec<Resize>,
    decoding: DecodeOptions,
}

/// A loaded model, ready to score.
#[pyclass(module = "normiqa._normiqa")]
pub struct Scorer {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    #[pyo3(get)]
    precision: String,
    #[pyo3(get)]
    workers: usize,
    #[pyo3(get)]
    threads: usize,
    #[pyo3(get)]
    heads: Vec<String>,
    #[pyo3(get)]
    scale: String,
    #[pyo3(get)]
    model: PathBuf,
}

/// An option value of the CLI's spelling (`bf16`, `five-crop`).
fn parse<T: clap::ValueEnum>(what: &str, s: &str, names: &str) -> PyResult<T> {
    T::from_str(s, false).map_err(|_| py_err(format!("{what}={s:?}: expected one of {names}")))
}

#[pymethods]
impl Scorer {
    /// Loads `model` (a run folder or an ensemble folder) into `workers` inference workers
    /// (0: as `normiqa predict --workers 0`).
    #[new]
    #[pyo3(signature = (model, precision="auto", workers=0, tta="none", tta_crop_fraction=None, device="auto", max_side=None, batch_size=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: PathBuf,
        precision: &str,
        workers: usize,
        tta: &str,
        tta_crop_fraction: Option<f64>,
        device: &str,
        max_side: Option<u32>,
        batch_size: usize,
    ) -> PyResult<Self> {
        let precision: Precision = parse("precision", precision, "auto, fp32, bf16, int8")?;
        let views: Tta = parse("tta", tta, "none, flip, five-crop, ten-crop")?;
        let tta = TestTime::new(views, tta_crop_fraction).map_err(|e| py_err(e.to_string()))?;
        let device = normiqa::cli::args::parse_device(device).map_err(to_py)?;
        let resize = match max_side {
            Some(0) => return Err(py_err("max_side=0: expected a positive number of pixels")),
            Some(n) => vec![Resize::MaxSide { n }],
            None => vec![],
        };
        let info = normiqa::infer::ensemble::load_info(&model).map_err(to_py)?;
        let (workers, threads) = PoolConfig::layout(device, precision, workers);
        let setup = Setup {
            model: model.clone(),
            device,
            precision,
            tta,
            threads,
            batch: normiqa::run::config::eval_batch_size(batch_size, device),
            resize,
            decoding: DecodeOptions::default(),
        };
        let (tx, handles, resolved) = py.detach(|| start(&setup, workers)).map_err(to_py)?;
        Ok(Scorer {
            jobs: Mutex::new(Some(tx)),
            handles: Mutex::new(handles),
            precision: resolved.name().to_string(),
            workers,
            threads,
            heads: info.heads.clone(),
            scale: info.score_scale(),
            model,
        })
    }

    /// Scores image files: (scores, errors), a score of NaN where the file failed and
    /// `errors` the (index, message naming the file) of each failure.
    fn score_paths(&self, py: Python<'_>, paths: Vec<PathBuf>) -> PyResult<(Vec<f64>, Vec<(usize, String)>)> {
        let items = paths
            .into_iter()
            .map(|p| (p.display().to_string(), Item::File(p)))
            .collect();
        self.run(py, items)
    }

    /// Scores HxWx3 uint8 arrays, as [`Scorer::score_paths`] (errors name "array I").
    fn score_arrays(
        &self,
        py: Python<'_>,
        arrays: Vec<PyReadonlyArray3<'_, u8>>,
    ) -> PyResult<(Vec<f64>, Vec<(usize, String)>)> {
        let mut items = Vec::with_capacity(arrays.len());
        for (i, a) in arrays.iter().enumerate() {
            let name = format!("array {i}");
            let img = crate::arrays::to_rgb(a, &name)?;
            items.push((name, Item::Array(img)));
        }
        self.run(py, items)
    }

    /// Stops the workers (also done when the object is garbage-collected).
    fn close(&self, py: Python<'_>) {
        // Without the GIL: a worker may be waiting for it to hand a log line to Python.
        py.detach(|| stop(&self.jobs, &self.handles));
    }
}

impl Drop for Scorer {
    fn drop(&mut self) {
        let (jobs, handles) = (&self.jobs, &self.handles);
        Python::attach(|py| py.detach(|| stop(jobs, handles)));
    }
}

fn stop(jobs: &Mutex<Option<mpsc::Sender<Job>>>, handles: &Mutex<Vec<JoinHandle<()>>>) {
    if let Ok(mut j) = jobs.lock() {
        j.take();
    }
    if let Ok(mut h) = handles.lock() {
        for h in h.drain(..) {
            let _ = h.join();
        }
    }
}

impl Scorer {
    /// Hands `items` to the workers in jobs and gathers the results in order (GIL released).
    fn run(&self, py: Python<'_>, items: Vec<(String, Item)>) -> PyResult<(Vec<f64>, Vec<(usize, String)>)> {
        let tx = self
            .jobs
            .lock()
            .map_err(|_| py_err("the scorer's lock is poisoned"))?
            .clone()
            .ok_or_else(|| py_err("this model was closed"))?;
        let n_jobs = py.detach(|| -> Result<Vec<Outcome>, String> {
            let n = items.len();
            let per_job = n.div_ceil(self.workers * 4).clamp(1, 16);
            let (reply, done) = mpsc::channel();
            let mut items = items.into_iter();
            let mut sent = 0;
            loop {
                let chunk: Vec<_> = items.by_ref().take(per_job).collect();
                if chunk.is_empty() {
                    break;
                }
                tx.send(Job { items: chunk, reply: reply.clone(), id: sent })
                    .map_err(|_| "the inference workers stopped".to_string())?;
                sent += 1;
            }
            drop(reply);
            let mut out: Vec<Option<Outcome>> = (0..sent).map(|_| None).collect();
            for (id, r) in done.iter() {
                out[id] = Some(r);
            }
            out.into_iter()
                .map(|o| o.ok_or_else(|| "an inference worker stopped".to_string()))
                .collect()
        });
        let outcomes = n_jobs.map_err(py_err)?;
        let mut scores = Vec::new();
        let mut errors = Vec::new();
        for r in outcomes.into_iter().flatten() {
            match r {
                Ok(s) => scores.push(s),
                Err(e) => {
                    errors.push((scores.len(), e));
                    scores.push(f64::NAN);
                }
            }
        }
        Ok((scores, errors))
    }
}

/// Starts `n` workers and waits until each has loaded the model; returns the precision they
/// run at.
fn start(setup: &Setup, n: usize) -> Result<(mpsc::Sender<Job>, Vec<JoinHandle<()>>, Precision)> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    let (ready_tx, ready) = mpsc::channel();
    let handles: Vec<_> = (0..n.max(1))
        .map(|_| {
            let (setup, rx, ready) = (setup.clone(), rx.clone(), ready_tx.clone());
            std::thread::spawn(move || worker(setup, rx, ready))
        })
        .collect();
    drop(ready_tx);
    let mut precision = None;
    for r in ready.iter() {
        precision = Some(r?);
    }
    let precision = precision.context("an inference worker stopped while loading the model")?;
    Ok((tx, handles, precision))
}

fn worker(setup: Setup, jobs: Arc<Mutex<mpsc::Receiver<Job>>>, ready: mpsc::Sender<Result<Precision>>) {
    tch::set_num_threads(setup.threads as i32);
    let tm = match TrainedModel::load(&setup.model, setup.device, None)
        .and_then(|t| t.with_precision(setup.precision))
        .and_then(|t| t.with_tta(setup.tta))
    {
        Ok(t) => t,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(tm.precision));
    drop(ready);
    loop {
        let job = jobs.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
        let Ok(job) = job else { return };
        let out = score_job(&tm, &setup, job.items);
        let _ = job.reply.send((job.id, out));
    }
}

/// An array through the resize rules of `predict` (`max_side`).
fn resized(img: RgbImage, rules: &[Resize]) -> Result<RgbImage, String> {
    let mut img = img;
    for r in rules {
        if let Resize::MaxSide { n } = *r {
            let (h, w) = (img.height(), img.width());
            if h.max(w) > n {
                let (nh, nw) = max_side_dims(h, w, n);
                img = resize_rgb(&img, nh, nw)?;
            }
        }
    }
    Ok(img)
}

/// Decodes and scores one job; a failure is the error of its item only.
fn score_job(tm: &TrainedModel, setup: &Setup, items: Vec<(String, Item)>) -> Outcome {
    let mut out: Outcome = Vec::with_capacity(items.len());
    let mut images = Vec::new();
    let mut slots = Vec::new();
    let mut names = Vec::new();
    for (name, item) in items {
        let img = match item {
            Item::File(p) => decode_one(&p, &setup.resize, &setup.decoding).map_err(|e| e.to_string()),
            Item::Array(a) => resized(a, &setup.resize).map_err(|e| format!("{name}: {e}")),
        };
        match img {
            Ok(img) => {
                slots.push(out.len());
                names.push(name);
                images.push(img);
                out.push(Ok(f64::NAN));
            }
            Err(e) => out.push(Err(e)),
        }
    }
    if images.is_empty() {
        return out;
    }
    // As `predict`'s workers (normiqa::infer::guarded): libtorch's panics caught, a failed
    // batch rescored image by image so that the error lands on the image that caused it, and
    // a non-finite score an error of its image, never a NaN returned as a score.
    let scores = normiqa::infer::guarded::score_each(tm, &images, setup.batch);
    for ((slot, r), name) in slots.iter().zip(scores).zip(names) {
        out[*slot] = r.map(|(mapped, _)| mapped).map_err(|e| format!("{name}: {e}"));
    }
    out
}

/// The ImageNet weights files that `model` (run or ensemble folder) needs and that are not
/// found where normiqa looks for them: (backbone name, its default weights file or None).
#[pyfunction]
fn missing_weights(model: PathBuf) -> PyResult<Vec<String>> {
    let dirs = if normiqa::infer::ensemble::is_ensemble(&model) {
        normiqa::infer::ensemble::checked_members(&model).map_err(to_py)?.0
    } else {
        vec![model]
    };
    let mut missing = Vec::new();
    for d in dirs {
        let info = normiqa::run::info::RunInfo::load(&d).map_err(to_py)?;
        let backbone = info.config.model.backbone;
        let needs = normiqa::run::info::needs_pretrained(&info);
        if needs && info.config.weights.is_none() && backbone.default_weights().is_none() {
            let name = backbone.to_string();
            if !missing.contains(&name) {
                missing.push(name);
            }
        }
    }
    Ok(missing)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Scorer>()?;
    m.add_function(wrap_pyfunction!(missing_weights, m)?)?;
    Ok(())
}
