//! Loopback load test of `normiqa serve`: a fixed number of POST /score requests (the given
//! images in turn, raw bytes), `--concurrency` at a time, stopping early after `--max-seconds`.
//! Prints one JSON object: requests sent, answers by status, wall time, throughput and latency
//! percentiles. `bench/serve.sh` runs it against a fresh server and `predict` on the same images.
//!
//! cargo run --release --example serve_load -- --url http://127.0.0.1:8080 --requests 200 \
//!     --concurrency 8 ../shared/data/clive/images/1001.JPG ...

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The server, e.g. http://127.0.0.1:8080 (loopback only: this is a load generator).
    #[arg(long)]
    url: String,
    /// Requests in all (the images are sent in turn).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Stop sending new requests after this many seconds.
    #[arg(long, default_value_t = 300)]
    max_seconds: u64,
    /// Image files to send.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let host = args
        .url
        .strip_prefix("http://")
        .and_then(|rest| rest.split([':', '/']).next())
        .unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        bail!(
            "--url {}: only loopback servers (http://127.0.0.1:PORT) are load-tested",
            args.url
        );
    }
    let images: Vec<Vec<u8>> = args
        .images
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<_>>()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(load(&args, Arc::new(images)))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn load(args: &Args, images: Arc<Vec<Vec<u8>>>) -> Result<serde_json::Value> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, images, next) = (client.clone(), images.clone(), next.clone());
        let (url, total) = (
            format!("{}/score", args.url.trim_end_matches('/')),
            args.requests,
        );
        tasks.push(tokio::spawn(async move {
            let mut seen: Vec<(u16, f64)> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= total || Instant::now() > deadline {
                    break;
                }
                let body = images[i % images.len()].clone();
                let t = Instant::now();
                let status = match client.post(&url).body(body).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                seen.push((status, t.elapsed().as_secs_f64() * 1e3));
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let wall = t0.elapsed().as_secs_f64();
    Ok(summary(&all, wall, args))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(all: &[(u16, f64)], wall: f64, args: &Args) -> serde_json::Value {
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (s, _) in all {
        let key = if *s == 0 {
            "connection error".to_string()
        } else {
            s.to_string()
        };
        *by_status.entry(key).or_default() += 1;
    }
    let mut ok: Vec<f64> = all
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, ms)| *ms)
        .collect();
    ok.sort_by(|a, b| a.total_cmp(b));
    serde_json::json!({
        "requests": all.len(),
        "concurrency": args.concurrency,
        "images": args.images.len(),
        "by_status": by_status,
        "seconds": wall,
        "ok_per_second": ok.len() as f64 / wall,
        "latency_ms_ok": {
            "p50": percentile(&ok, 50.0),
            "p99": percentile(&ok, 99.0),
            "max": ok.last().copied().unwrap_or(f64::NAN),
        },
    })
}
