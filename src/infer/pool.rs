//! Scoring files with several inference workers (`predict`): each worker thread owns its own
//! copy of the trained model and decodes and scores whole jobs (runs of files) on its own,
//! with few intra-op threads.
//!
//! Why: at batch 1 a 500-px Lite0 forward is a chain of ~70 small operations, and splitting
//! each one across the cores costs a barrier per operation while the decoder waits its turn.
//! In bf16, two workers of one thread each score ~5–15% more photos per second than one worker
//! of two threads on the 2-core machine of BENCHMARKS.md (decoding overlaps scoring); in fp32
//! one worker of two threads is faster ([`PoolConfig::layout`] picks).
//! Workers do not share tensors (tch tensors are `Send`, not `Sync`): each loads the run
//! folder itself, which costs one more copy of the weights (~20 MB for Lite0) per worker.
//!
//! Results come back in job order, so the caller writes rows in the order of its file list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Result};
use normiqa_core::data::decode::{decode_one, DecodeOptions, Resize};
use tch::Device;

use crate::model::precision::Precision;
use super::tta::TestTime;
use super::trained::TrainedModel;

/// What the workers are and load.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub model: PathBuf,
    pub weights: Option<PathBuf>,
    pub device: Device,
    pub precision: Precision,
    /// The views each image is scored on (`--tta`).
    pub tta: TestTime,
    /// Worker threads (each with its own model).
    pub workers: usize,
    /// Intra-op threads of each worker.
    pub threads: usize,
    /// Images per forward pass (same-size images only).
    pub batch: usize,
    pub resize: Vec<Resize>,
    pub decoding: DecodeOptions,
}

impl PoolConfig {
    /// (workers, intra-op threads of each) for the CPUs this process is given
    /// ([`crate::cpus::current`]: `--threads`, else the affinity mask, cgroup quota and
    /// SLURM_CPUS_PER_TASK). `workers == 0`: for bf16 on the CPU one worker per CPU up to 8
    /// (the remaining CPUs shared out as intra-op threads); otherwise one worker with all the
    /// CPUs. Measured on 2 cores (BENCHMARKS.md): bf16 scores ~5–15% more photos per second
    /// with 2 workers of 1 thread than with 1 of 2, but fp32 ~40% fewer (its single-threaded
    /// convolutions are much slower).
    pub fn layout(device: Device, precision: Precision, workers: usize) -> (usize, usize) {
        let cores = crate::cpus::current().cpus;
        let w = match (workers, device, precision.resolve(device)) {
            (0, Device::Cpu, Precision::Bf16) => cores.min(8),
            (0, _, _) => 1,
            (w, _, _) => w,
        };
        (w, (cores / w).max(1))
    }
}

/// One scored image: its score, every head's raw output, and its size after the resize rules.
#[derive(Debug, Clone)]
pub struct Scored {
    pub mapped: f64,
    pub heads: Vec<f64>,
    pub width: u32,
    pub height: u32,
}

/// A job's results, in the job's order: the printed name, and the score or the error (which
/// names the file).
pub type JobResult = Vec<(String, Result<Scored, String>)>;

struct Job {
    id: usize,
    files: Vec<(PathBuf, String)>,
}

/// Running workers. Dropping the pool stops them after their current job.
pub struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    done: mpsc::Receiver<(usize, Result<JobResult>)>,
    handles: Vec<JoinHandle<()>>,
    /// The precision the workers run at (`auto` resolved).
    pub precision: Precision,
    pub workers: usize,
}

impl Pool {
    /// Starts the workers and waits until each has loaded its model (a load error, e.g. a
    /// precision the model cannot run at, is returned here).
    pub fn start(cfg: PoolConfig) -> Result<Pool> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let handles = (0..cfg.workers.max(1))
            .map(|_| {
                let (cfg, jobs, done, ready) =
                    (cfg.clone(), job_rx.clone(), done_tx.clone(), ready_tx.clone());
                std::thread::spawn(move || worker(cfg, jobs, done, ready))
            })
            .collect::<Vec<_>>();
        drop(ready_tx);
        let mut precision = None;
        let mut started = 0;
        for r in ready.iter() {
            precision = Some(r?);
            started += 1;
        }
        if started < handles.len() {
            anyhow::bail!("an inference worker stopped while loading the model");
        }
        Ok(Pool {
            jobs: Some(job_tx),
            done,
            workers: handles.len(),
            handles,
            precision: precision.ok_or_else(|| anyhow!("no inference worker started"))?,
        })
    }

    /// Scores `files` in jobs of at most `job` files, at most 2 jobs per worker in flight, and
    /// hands each job's results to `sink` in the order of `files`.
    pub fn score(
        &self,
        files: &[(PathBuf, String)],
        job: usize,
        mut sink: impl FnMut(JobResult) -> Result<()>,
    ) -> Result<()> {
        let jobs = self.jobs.as_ref().expect("the pool is running");
        let chunks: Vec<&[(PathBuf, String)]> = files.chunks(job.max(1)).collect();
        let (mut sent, mut next) = (0, 0);
        let mut waiting = BTreeMap::new();
        while next < chunks.len() {
            while sent < chunks.len() && sent < next + 2 * self.workers {
                jobs.send(Job {
                    id: sent,
                    files: chunks[sent].to_vec(),
                })
                .map_err(|_| anyhow!("the inference workers stopped"))?;
                sent += 1;
            }
            let (id, r) = self
                .done
                .recv()
                .map_err(|_| anyhow!("the inference workers stopped"))?;
            waiting.insert(id, r?);
            while let Some(r) = waiting.remove(&next) {
                sink(r)?;
                next += 1;
            }
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(
    cfg: PoolConfig,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    done: mpsc::Sender<(usize, Result<JobResult>)>,
    ready: mpsc::Sender<Result<Precision>>,
) {
    // libtorch's intra-op thread count is per thread (OpenMP): set it in this thread.
    tch::set_num_threads(cfg.threads as i32);
    let tm = match TrainedModel::load(&cfg.model, cfg.device, cfg.weights.as_deref())
        .and_then(|t| t.with_precision(cfg.precision))
        .and_then(|t| t.with_tta(cfg.tta))
    {
        Ok(t) => t,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(tm.precision));
    // Pool::start reads until every worker's sender is gone (a worker that panics while
    // loading drops its sender without a message).
    drop(ready);
    loop {
        let job = jobs.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
        let Ok(job) = job else { return };
        let r = score_job(&tm, &cfg, &job.files);
        if done.send((job.id, r)).is_err() {
            return;
        }
    }
}

/// Decodes and scores one job's files; an unreadable file, a failed forward (libtorch's error,
/// e.g. memory for a large photo) or a non-finite score is an error of its row only, naming the
/// file ([`super::guarded`]).
fn score_job(tm: &TrainedModel, cfg: &PoolConfig, files: &[(PathBuf, String)]) -> Result<JobResult> {
    let mut images = Vec::with_capacity(files.len());
    let mut sizes = Vec::with_capacity(files.len());
    for (p, _) in files {
        match decode_one(Path::new(p), &cfg.resize, &cfg.decoding) {
            Ok(im) => {
                sizes.push(Ok(im.dimensions()));
                images.push(im);
            }
            Err(e) => sizes.push(Err(e.to_string())),
        }
    }
    let mut scores = match images.is_empty() {
        true => Vec::new(),
        false => super::guarded::score_each(tm, &images, cfg.batch),
    }
    .into_iter();
    let mut row = |p: &Path, (width, height): (u32, u32)| {
        let s = scores.next().expect("one score per decoded image");
        s.map(|(mapped, heads)| Scored { mapped, heads, width, height })
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    Ok(files
        .iter()
        .zip(sizes)
        .map(|((p, name), size)| (name.clone(), size.and_then(|s| row(p.as_path(), s))))
        .collect())
}
