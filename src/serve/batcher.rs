//! Micro-batching: request handlers put decoded images on a bounded queue; worker threads, each
//! owning its own copy of the model, take turns at the queue: the one whose turn it is takes up
//! to `max_batch` queued images (waiting at most `max_wait` after the first for more to
//! arrive), splits them by size (the network's batch path needs one size per forward pass) and
//! answers each request with its score, while the next worker gathers the next batch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use image::RgbImage;
use tokio::sync::oneshot;

use super::model::{ModelInfo, Scorer};

/// How the worker groups requests.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Most images per forward pass (at least 1).
    pub max_batch: usize,
    /// How long the worker waits after the first queued image for others to join its batch.
    pub max_wait: Duration,
    /// Most images waiting in the queue.
    pub capacity: usize,
}

/// One image waiting for its score; the answer goes back through `reply`.
struct Job {
    image: RgbImage,
    reply: oneshot::Sender<std::result::Result<f64, String>>,
}

/// Why an image could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full ({0} images waiting)")]
    Full(usize),
    #[error("the service is shutting down")]
    Closed,
}

/// The handlers' side of the queue. Dropping every clone lets the worker finish what is queued
/// and stop.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Job>,
    waiting: Arc<AtomicUsize>,
    capacity: usize,
}

/// The worker threads; [`Worker::join`] waits until they have answered everything queued.
pub struct Worker(Vec<JoinHandle<()>>);

/// A factory run on a worker thread (libtorch models stay on the thread that made them).
pub type LoadModel = Box<dyn FnOnce() -> Result<(ModelInfo, Box<dyn Scorer>)> + Send>;

/// Starts one worker thread per loader, loads the models on them and returns once all are
/// ready (or the first error). The service's model information is the first worker's.
pub fn start(loads: Vec<LoadModel>, opts: BatchOptions) -> Result<(ModelInfo, Queue, Worker)> {
    let opts = BatchOptions {
        max_batch: opts.max_batch.max(1),
        capacity: opts.capacity.max(1),
        ..opts
    };
    let (tx, rx) = mpsc::sync_channel::<Job>(opts.capacity);
    let rx = Arc::new(Mutex::new(rx));
    let (ready_tx, ready_rx) = mpsc::channel::<(usize, Result<ModelInfo>)>();
    let waiting = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(loads.len());
    for (k, load) in loads.into_iter().enumerate() {
        let (rx, ready_tx, waiting) = (rx.clone(), ready_tx.clone(), waiting.clone());
        let handle = std::thread::Builder::new()
            .name(format!("normiqa-serve-model-{k}"))
            .spawn(move || match load() {
                Ok((info, scorer)) => {
                    let _ = ready_tx.send((k, Ok(info)));
                    // start() reads until every worker's sender is gone.
                    drop(ready_tx);
                    run(scorer, &rx, opts, &waiting);
                }
                Err(e) => {
                    let _ = ready_tx.send((k, Err(e)));
                }
            })
            .context("starting a model thread")?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut infos: Vec<(usize, ModelInfo)> = Vec::with_capacity(handles.len());
    for (k, r) in ready_rx.iter() {
        infos.push((k, r?));
    }
    if infos.len() < handles.len() || infos.is_empty() {
        return Err(anyhow!("a model thread stopped while loading the model"));
    }
    infos.sort_by_key(|(k, _)| *k);
    let info = infos.swap_remove(0).1;
    let queue = Queue {
        tx,
        waiting,
        capacity: opts.capacity,
    };
    Ok((info, queue, Worker(handles)))
}

impl Queue {
    /// Queues an image without waiting; the returned receiver gets its score (or the model's
    /// error message).
    pub fn submit(
        &self,
        image: RgbImage,
    ) -> std::result::Result<oneshot::Receiver<std::result::Result<f64, String>>, SubmitError> {
        let (reply, rx) = oneshot::channel();
        // Counted before sending so that the worker's decrement never runs first.
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(Job { image, reply }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => SubmitError::Full(self.capacity),
                    TrySendError::Disconnected(_) => SubmitError::Closed,
                })
            }
        }
    }

    /// Images queued and not yet taken by the worker.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

impl Worker {
    /// Waits for the worker threads to answer what is queued and stop (once every [`Queue`]
    /// clone is dropped).
    pub fn join(self) -> Result<()> {
        for h in self.0 {
            h.join().map_err(|_| anyhow!("a model thread panicked"))?;
        }
        Ok(())
    }
}

/// A worker: takes its turn at the queue (holding it while it gathers one batch), then scores
/// the batch while the next worker gathers.
fn run(
    mut scorer: Box<dyn Scorer>,
    rx: &Mutex<Receiver<Job>>,
    opts: BatchOptions,
    waiting: &AtomicUsize,
) {
    loop {
        let jobs = {
            // A worker that panicked while holding the queue cannot have left it inconsistent
            // (it only receives): keep serving.
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            let Ok(first) = rx.recv() else { return };
            waiting.fetch_sub(1, Ordering::SeqCst);
            gather(first, &rx, opts, waiting)
        };
        for same_size in by_size(jobs) {
            score_batch(scorer.as_mut(), same_size);
        }
    }
}

/// The first job plus whatever arrives within `max_wait`, up to `max_batch` jobs.
fn gather(first: Job, rx: &Receiver<Job>, opts: BatchOptions, waiting: &AtomicUsize) -> Vec<Job> {
    let mut jobs = vec![first];
    let deadline = Instant::now() + opts.max_wait;
    while jobs.len() < opts.max_batch {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = if left.is_zero() {
            rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
        } else {
            rx.recv_timeout(left)
        };
        match next {
            Ok(job) => {
                waiting.fetch_sub(1, Ordering::SeqCst);
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    jobs
}

/// Groups jobs by image size (width, height), keeping arrival order within a group.
fn by_size(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: BTreeMap<(u32, u32), Vec<Job>> = BTreeMap::new();
    for job in jobs {
        groups.entry(job.image.dimensions()).or_default().push(job);
    }
    groups.into_values().collect()
}

fn score_batch(scorer: &mut dyn Scorer, jobs: Vec<Job>) {
    let (images, replies): (Vec<RgbImage>, Vec<_>) =
        jobs.into_iter().map(|j| (j.image, j.reply)).unzip();
    for (reply, s) in replies.into_iter().zip(score_each(scorer, &images)) {
        if let Err(e) = &s {
            tracing::error!("{e}");
        }
        // A client that went away no longer waits for its answer.
        let _ = reply.send(s);
    }
}

/// One score or error per image. libtorch errors surface as panics in tch's forward calls:
/// caught (keep serving); the images of a failed batch are scored again one by one, so only the
/// image at fault fails; errors carry libtorch's message without its C++ trace; a non-finite
/// score is an error ([`crate::infer::guarded`]).
fn score_each(scorer: &mut dyn Scorer, images: &[RgbImage]) -> Vec<std::result::Result<f64, String>> {
    use crate::infer::guarded::caught;
    let result = caught(|| scorer.score(images)).and_then(|scores| match scores.len() == images.len() {
        true => Ok(scores),
        false => Err(format!("the model returned {} scores for {} images", scores.len(), images.len())),
    });
    match result {
        Ok(scores) => scores
            .into_iter()
            .map(|s| match s.is_finite() {
                true => Ok(s),
                false => Err(format!("scoring failed: the model gave a non-finite score ({s})")),
            })
            .collect(),
        Err(e) if images.len() == 1 => vec![Err(format!("scoring failed: {e}"))],
        Err(_) => images
            .iter()
            .flat_map(|im| score_each(scorer, std::slice::from_ref(im)))
            .collect(),
    }
}
