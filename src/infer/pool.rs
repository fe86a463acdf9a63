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
    /// The most memory scoring one image may take by [`TrainedModel::memory_estimate`], bytes
    /// (`predict --max-image-memory`); a larger image is refused, naming the file and the
    /// `--max-side` that fits it. 0 = no limit.
    pub max_image_memory: u64,
}

/// `--max-image-memory`'s default: half of this machine's memory, or of its cgroup's limit where
/// that is lower (Linux; elsewhere no limit, 0).
pub fn default_max_image_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        let line = t.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
    });
    let cgroup = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
    match (meminfo, cgroup) {
        (Some(m), Some(c)) => m.min(c) / 2,
        (Some(m), None) => m / 2,
        (None, Some(c)) => c / 2,
        (None, None) => 0,
    }
}

/// The refusal of a `w`×`h` image whose estimate is over `limit` bytes, with the longest side
/// that fits; `None` when it fits (or there is no limit).
pub fn over_memory(tm: &TrainedModel, w: u32, h: u32, limit: u64) -> Option<String> {
    let need = tm.memory_estimate(w, h);
    if limit == 0 || need <= limit {
        return None;
    }
    // The estimate grows with the pixels: scale both sides by sqrt(limit / need).
    let side = (w.max(h) as f64 * (limit as f64 / need as f64).sqrt()).floor() as u64;
    let mb = |b: u64| b.div_ceil(1 << 20);
    Some(format!(
        "{w}x{h}: scoring it would take about {} MB, more than --max-image-memory {} MB (default: half of this machine's memory); --max-side {} scores it downscaled to fit",
        mb(need),
        mb(limit),
        side.max(1)
    ))
}

impl PoolConfig {
    /// (workers, intra-op threads of each) for the CPUs this process is given
    /// ([`crate::cpus::current`]: `--threads`, else the affinity mask, cgroup quota and
    /// SLURM_CPUS_PER_TASK). `workers == 0`: for bf16 and int8 on the CPU one worker per CPU up to 8
    /// (the remaining CPUs shared out as intra-op threads); otherwise one worker with all the
    /// CPUs. Measured on 2 cores (BENCHMARKS.md): bf16 scores ~5–15% more photos per second
    /// with 2 workers of 1 thread than with 1 of 2, int8 ~30% more (32.7 vs 25.2 photos/s,
    /// session 11), but fp32 ~40% fewer (its single-threaded convolutions are much slower).
    pub fn layout(device: Device, precision: Precision, workers: usize) -> (usize, usize) {
        let cores = crate::cpus::current().cpus;
        let w = match (workers, device, precision.resolve(device)) {
            (0, Device::Cpu, Precision::Bf16 | Precision::Int8) => cores.min(8),
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
        let workers = cfg.workers;
        let load: Loader = Arc::new(move || {
            // libtorch's intra-op thread count is per thread (OpenMP): set it in this thread.
            tch::set_num_threads(cfg.threads as i32);
            let tm = TrainedModel::load(&cfg.model, cfg.device, cfg.weights.as_deref())
                .and_then(|t| t.with_precision(cfg.precision))
                .and_then(|t| t.with_tta(cfg.tta))?;
            let precision = tm.precision;
            let cfg = cfg.clone();
            let score: ScoreJob = Box::new(move |files| score_job(&tm, &cfg, files));
            Ok((precision, score))
        });
        Self::start_with(workers, load)
    }

    /// [`Pool::start`] with `workers` threads that each call `load` once, then score every job
    /// they take with what it returned.
    fn start_with(workers: usize, load: Loader) -> Result<Pool> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        let handles = (0..workers.max(1))
            .map(|_| {
                let (load, jobs, done, ready) =
                    (load.clone(), job_rx.clone(), done_tx.clone(), ready_tx.clone());
                std::thread::spawn(move || worker(load, jobs, done, ready))
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

/// Scores one job's files (on a worker's own model).
type ScoreJob = Box<dyn Fn(&[(PathBuf, String)]) -> Result<JobResult>>;
/// What each worker calls once, on its own thread: the precision it runs at and its scorer.
type Loader = Arc<dyn Fn() -> Result<(Precision, ScoreJob)> + Send + Sync>;

fn worker(
    load: Loader,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    done: mpsc::Sender<(usize, Result<JobResult>)>,
    ready: mpsc::Sender<Result<Precision>>,
) {
    let score = match load() {
        Ok((precision, score)) => {
            let _ = ready.send(Ok(precision));
            score
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    // Pool::start reads until every worker's sender is gone (a worker that panics while
    // loading drops its sender without a message).
    drop(ready);
    loop {
        let job = jobs.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
        let Ok(job) = job else { return };
        // Whatever ends this job, Pool::score gets an answer for it: a panic is caught (and
        // pinned on its file), and should the thread end any other way the guard answers.
        let answer = Answer { id: job.id, files: &job.files, done: &done, sent: false };
        answer.send(run_job(&score, &job.files));
    }
}

/// The one answer of a job: sent by [`Answer::send`], or, if the worker ends without sending
/// it, by its drop, as an error naming the job's files (never a `Pool::score` that waits
/// forever).
struct Answer<'a> {
    id: usize,
    files: &'a [(PathBuf, String)],
    done: &'a mpsc::Sender<(usize, Result<JobResult>)>,
    sent: bool,
}

impl Answer<'_> {
    fn send(mut self, r: Result<JobResult>) {
        self.sent = true;
        let _ = self.done.send((self.id, r));
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.done.send((
                self.id,
                Err(anyhow!(
                    "an inference worker stopped while scoring {}",
                    file_list(self.files)
                )),
            ));
        }
    }
}

/// "a.jpg, b.jpg and 3 more files".
fn file_list(files: &[(PathBuf, String)]) -> String {
    let mut s = files.iter().take(3).map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", ");
    if files.len() > 3 {
        s.push_str(&format!(" and {} more files", files.len() - 3));
    }
    s
}

/// Scores a job; if the scorer panics (outside the forward passes, which
/// [`super::guarded`] already guards: in a decoder, say), the job's files are scored again one
/// by one so that only the file at fault fails, with the panic's message.
fn run_job(score: &ScoreJob, files: &[(PathBuf, String)]) -> Result<JobResult> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| score(files))) {
        Ok(r) => r,
        Err(panic) if files.len() == 1 => {
            let (path, name) = &files[0];
            let why = super::guarded::short_error(&super::guarded::panic_text(panic.as_ref()));
            Ok(vec![(name.clone(), Err(format!("{}: the inference worker failed on this file: {why}", path.display())))])
        }
        Err(_) => {
            let mut out = Vec::with_capacity(files.len());
            for f in files {
                out.extend(run_job(score, std::slice::from_ref(f))?);
            }
            Ok(out)
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
                let (w, h) = im.dimensions();
                match over_memory(tm, w, h, cfg.max_image_memory) {
                    Some(why) => sizes.push(Err(format!("{}: {why}", p.display()))),
                    None => {
                        sizes.push(Ok((w, h)));
                        images.push(im);
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Workers whose scorer panics on any file named `boom*` (as a decoder bug would) and
    /// scores the others 1.0.
    fn panicking_pool(workers: usize) -> Pool {
        let load: Loader = Arc::new(|| {
            let score: ScoreJob = Box::new(|files| {
                Ok(files
                    .iter()
                    .map(|(p, name)| {
                        if name.starts_with("boom") {
                            panic!("a decoder bug on {}", p.display());
                        }
                        let s = Scored { mapped: 1.0, heads: vec![1.0], width: 1, height: 1 };
                        (name.clone(), Ok(s))
                    })
                    .collect())
            });
            Ok((Precision::Fp32, score))
        });
        Pool::start_with(workers, load).unwrap()
    }

    /// A worker that panics outside the forward passes fails the file at fault only, naming
    /// it; the others are scored and `score` returns (it waited forever on the job's answer
    /// before). Bounded: the scoring runs on a thread given 20 s.
    #[test]
    fn a_panicking_worker_fails_its_file_and_never_hangs_score() {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let pool = panicking_pool(2);
            let files: Vec<(PathBuf, String)> = ["a.png", "boom.png", "c.png", "d.png", "e.png"]
                .iter()
                .map(|n| (PathBuf::from(format!("dir/{n}")), n.to_string()))
                .collect();
            let mut rows = Vec::new();
            let r = pool.score(&files, 2, |job| {
                rows.extend(job);
                Ok(())
            });
            let _ = tx.send((r.map_err(|e| e.to_string()), rows));
        });
        let (r, rows) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("Pool::score hung after a worker panicked");
        r.unwrap();
        let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.png", "boom.png", "c.png", "d.png", "e.png"]);
        for (name, r) in &rows {
            match (name.as_str(), r) {
                ("boom.png", Err(e)) => assert!(
                    e.contains("dir/boom.png") && e.contains("a decoder bug on dir/boom.png"),
                    "{e}"
                ),
                (_, Ok(s)) => assert_eq!(s.mapped, 1.0),
                (n, r) => panic!("{n}: {:?}", r.as_ref().err()),
            }
        }
    }

    /// The guard of a job whose worker ends without answering answers for it, naming its files.
    #[test]
    fn a_job_whose_worker_ends_unanswered_is_an_error_naming_its_files() {
        let (done, rx) = mpsc::channel();
        let files = vec![(PathBuf::from("x/one.png"), "one.png".to_string())];
        drop(Answer { id: 7, files: &files, done: &done, sent: false });
        let (id, r) = rx.recv().unwrap();
        assert_eq!(id, 7);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("x/one.png") && e.contains("stopped"), "{e}");
    }
}
