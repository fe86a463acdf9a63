//! `normiqa serve`: the HTTP scoring service (see [`crate::serve`]).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::args::parse_device;
use super::predict::model_dir_or_default;
use crate::infer::pool::PoolConfig;
use crate::serve::{self, ServeOptions};

#[derive(Args, Debug)]
#[command(after_help = "Routes:
  POST /score    the image's bytes as the body, or a multipart form with one file
                 (curl --data-binary @photo.jpg URL/score, or curl -F image=@photo.jpg URL/score)
                 -> {\"score\", \"model\", \"width\", \"height\"}: the same score as `normiqa predict`
  GET  /         a web page: drop photos, see their scores
  GET  /healthz  model name and queue state
Errors are JSON {\"error\": \"...\"}: 400 bad image, 408 body too slow (--body-timeout), 413 over
a limit, 415 not an image, 500 the model failed on the image, 503 busy (--queue) or shutting down.
Connections: closed after --idle-timeout without a request, --header-timeout of unfinished
headers, or --write-timeout of an answer left unread.
ctrl-c or SIGTERM: answer the requests received (for at most --shutdown-grace), then stop.")]
pub struct ServeArgs {
    /// Run directory of a trained model, or an ensemble folder (ensemble.toml). Default: the
    /// model shipped with normiqa (models/clive-efficientnet-lite012, the mean of three
    /// EfficientNet-Lite models), or $NORMIQA_MODEL; models/clive-efficientnet-lite0 alone is
    /// about 4x faster and less accurate.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Pretrained backbone weights, if not found automatically.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Address to listen on, HOST:PORT (port 0: a free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Most images per forward pass: same-size images queued together are scored as one batch.
    /// 0 = automatic, as predict's --batch-size (1 on CPU, 16 on CUDA).
    #[arg(long, default_value_t = 0)]
    pub max_batch: usize,
    /// Milliseconds the model waits after a request for others to join its batch (with
    /// --max-batch above 1).
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Most requests in the service at once (being received, decoded, queued or scored); more
    /// are answered 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Largest request body in bytes (the raw image, or the whole multipart form); larger: 413.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest image in pixels (width x height, read from its header before decoding); larger:
    /// 413. 0 = no limit.
    #[arg(long, default_value_t = 89_478_485)]
    pub max_image_pixels: u64,
    /// Seconds a connection may wait for a request: from its start, or from the end of the
    /// previous answer on it (an idle keep-alive connection), to the request's first byte; then
    /// it is closed.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub idle_timeout: f64,
    /// Seconds a client has to send a request's headers once their first byte arrived; then
    /// the connection is closed.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub header_timeout: f64,
    /// The most memory, in MB, that scoring one image may take by normiqa's estimate (as
    /// predict's --max-image-memory); a larger image is answered 500 with the --max-side that
    /// would fit, before libtorch allocates. Default: half of this machine's memory (its cgroup
    /// limit if lower). 0 = no limit.
    #[arg(long, value_name = "MB")]
    pub max_image_memory: Option<u64>,
    /// Seconds a client has to send a request's whole body once its headers are read; then
    /// 408 (a client trickling bytes holds a request slot for at most this).
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub body_timeout: f64,
    /// Seconds a client may leave its answer unread: when writing to it makes no progress for
    /// this long, the connection is closed (a client that never reads holds no connection).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub write_timeout: f64,
    /// Seconds a shutdown (ctrl-c, SIGTERM) waits for the requests in flight before closing the
    /// connections still open.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub shutdown_grace: f64,
    /// cpu, cuda, cuda:N or auto (CUDA when available).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Numeric precision of the forward pass: auto (bf16 where measured faster: AMD CPUs with
    /// AVX-512 BF16; else fp32), fp32, bf16 (about 1.6x the throughput on Zen 4/5; the shipped model's CLIVE test SROCC moves by
    /// under 0.003, RESULTS.md), or int8 (EfficientNet-Lite models: the fastest, scores about
    /// 1.3 MOS points from fp32's on average; never chosen by auto, RESULTS.md "int8").
    #[arg(long, value_enum, default_value = "auto")]
    pub precision: crate::model::Precision,
    #[command(flatten)]
    pub tta: super::args::TtaArgs,
    /// Model workers, each with its own copy of the model, taking turns at the queue; 0 =
    /// automatic (as predict's --workers: bf16 on the CPU, one per core up to 8; otherwise one).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
}

pub fn run(args: ServeArgs) -> Result<()> {
    if args.queue == 0 {
        bail!("--queue 0: must be at least 1 (the number of requests served at once)");
    }
    if args.max_body_bytes == 0 {
        bail!("--max-body-bytes 0: must be at least 1");
    }
    let device = parse_device(&args.device)?;
    let tta = args.tta.test_time()?;
    let dir = model_dir_or_default(&args.model)?;
    let opts = ServeOptions {
        max_batch: crate::run::config::eval_batch_size(args.max_batch, device),
        max_wait: Duration::from_millis(args.max_wait_ms),
        queue: args.queue,
        max_body_bytes: args.max_body_bytes,
        max_image_pixels: args.max_image_pixels,
        timeouts: serve::Timeouts {
            idle: seconds("--idle-timeout", args.idle_timeout)?,
            header: seconds("--header-timeout", args.header_timeout)?,
            body: seconds("--body-timeout", args.body_timeout)?,
            write: seconds("--write-timeout", args.write_timeout)?,
            shutdown_grace: seconds("--shutdown-grace", args.shutdown_grace)?,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(&args.bind))
        .with_context(|| format!("--bind {}: cannot listen on this address", args.bind))?;
    let addr = listener.local_addr()?;
    let precision = args.precision;
    let max_image_memory = args.max_image_memory;
    let (workers, threads) = PoolConfig::layout(device, precision, args.workers);
    let loads = (0..workers)
        .map(|_| {
            let (dir, weights) = (dir.clone(), args.weights.clone());
            Box::new(move || {
                // libtorch's intra-op thread count is per thread: set it on the model's thread.
                tch::set_num_threads(threads as i32);
                let (info, scorer) = serve::model::load(&dir, device, weights.as_deref(), precision, tta)?;
                let scorer = match max_image_memory {
                    Some(mb) => scorer.with_max_image_memory(mb.saturating_mul(1 << 20)),
                    None => scorer,
                };
                Ok((info, Box::new(scorer) as Box<dyn serve::Scorer>))
            }) as serve::LoadModel
        })
        .collect();
    let service = serve::start_workers(loads, opts)?;
    let info = service.info();
    tracing::info!(
        "serving {} (scores on the {} scale, {}, --tta {}, {workers} model worker(s) of {threads} thread(s); {}) at http://{addr}/ (POST /score; at most {} image(s) per forward pass)",
        info.name,
        info.trained_on,
        info.precision,
        info.tta,
        crate::cpus::current(),
        opts.max_batch
    );
    runtime.block_on(service.run(listener, serve::shutdown_signal()))?;
    tracing::info!("stopped");
    Ok(())
}

/// A positive, finite number of seconds given as `option`.
fn seconds(option: &str, s: f64) -> Result<Duration> {
    if !(s.is_finite() && s > 0.0) {
        bail!("{option} {s}: must be a positive number of seconds");
    }
    Duration::try_from_secs_f64(s).map_err(|e| anyhow::anyhow!("{option} {s}: {e}"))
}
