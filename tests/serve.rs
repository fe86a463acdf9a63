//! `normiqa serve` over loopback HTTP: scores equal `predict`'s, micro-batching, the bounded
//! queue (503), the body and pixel limits, bad images, graceful shutdown, and the binary's
//! SIGTERM handling. Scheduling is made deterministic with a gated scorer that blocks until the
//! test releases it; no test asserts on timing.

mod serve_common;

use std::path::Path;
use std::time::Duration;

use normiqa::model::Precision;
use normiqa::serve::{self, ModelInfo, Scorer, ServeOptions};
use serve_common::*;
use tokio::sync::mpsc;

/// A scorer that reports each batch's size, then waits for the test to release it; its score
/// of an image is the image's width (so each answer can be traced to its request).
struct Gated {
    entered: mpsc::UnboundedSender<usize>,
    release: std::sync::mpsc::Receiver<()>,
}

impl Scorer for Gated {
    fn score(&mut self, images: &[image::RgbImage]) -> anyhow::Result<Vec<f64>> {
        let _ = self.entered.send(images.len());
        // A dropped sender (test over) releases every batch.
        let _ = self.release.recv();
        Ok(images.iter().map(|im| im.width() as f64).collect())
    }
}

struct Gate {
    entered: mpsc::UnboundedReceiver<usize>,
    release: std::sync::mpsc::Sender<()>,
}

fn gated() -> (serve::LoadModel, Gate) {
    let (etx, erx) = mpsc::unbounded_channel();
    let (rtx, rrx) = std::sync::mpsc::channel();
    let load: serve::LoadModel = Box::new(move || {
        let info = ModelInfo {
            name: "gated".into(),
            trained_on: "test".into(),
            precision: Precision::Fp32,
            tta: normiqa::infer::TestTime::default(),
        };
        let s: Box<dyn Scorer> = Box::new(Gated {
            entered: etx,
            release: rrx,
        });
        Ok((info, s))
    });
    (
        load,
        Gate {
            entered: erx,
            release: rtx,
        },
    )
}

fn opts(max_batch: usize, queue: usize) -> ServeOptions {
    ServeOptions {
        max_batch,
        max_wait: Duration::ZERO,
        queue,
        max_body_bytes: 1 << 20,
        max_image_pixels: 0,
        timeouts: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_equal_predict_for_raw_bytes_and_multipart_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        write_image(tmp.path(), "a.png", 64, 48, 0),
        write_image(tmp.path(), "b.jpg", 40, 56, 1),
    ];
    let expected = predict_scores(&files, tmp.path());
    let server = Server::start(shipped_model_loader(), opts(1, 8)).await;
    let client = client();
    for (file, want) in files.iter().zip(&expected) {
        let bytes = std::fs::read(file).unwrap();
        let raw = server.post_bytes(&client, bytes.clone()).await;
        assert_eq!(raw.status, 200, "{}", raw.body);
        assert_eq!(raw.json["score"].as_f64().unwrap(), *want, "{}", raw.body);
        assert_eq!(raw.json["model"], "clive-efficientnet-lite0");
        let (w, h) = image::image_dimensions(file).unwrap();
        assert_eq!(raw.json["width"].as_u64().unwrap(), w as u64);
        assert_eq!(raw.json["height"].as_u64().unwrap(), h as u64);
        let name = file.file_name().unwrap().to_str().unwrap();
        let form = server.post_form(&client, &[(name, bytes)]).await;
        assert_eq!(form.status, 200, "{}", form.body);
        assert_eq!(form.json["score"].as_f64().unwrap(), *want);
        assert_eq!(form.json["image"], name);
    }
    let health = server.get(&client, "/healthz").await;
    assert_eq!(health.json["status"], "ok");
    assert_eq!(health.json["model"], "clive-efficientnet-lite0");
    assert_eq!(health.json["trained_on"], "CLIVE");
    let page = client.get(format!("{}/", server.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<input id=\"files\" type=\"file\"") && html.contains("fetch(\"score\""));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_of_one_size_share_a_batch() {
    let (load, mut gate) = gated();
    let server = Server::start(load, opts(4, 16)).await;
    let client = client();
    let first = server.spawn_post(&client, png_bytes(30, 20));
    assert_eq!(gate.entered.recv().await, Some(1));
    // While the model is busy, three more arrive: two of one size, one of another.
    let others: Vec<_> = [(32, 32), (40, 32), (32, 32)]
        .iter()
        .map(|&(w, h)| server.spawn_post(&client, png_bytes(w, h)))
        .collect();
    server.wait_until(&client, |h| h["waiting"] == 3).await;
    for _ in 0..3 {
        gate.release.send(()).unwrap();
    }
    let mut sizes = vec![
        gate.entered.recv().await.unwrap(),
        gate.entered.recv().await.unwrap(),
    ];
    sizes.sort();
    assert_eq!(
        sizes,
        [1, 2],
        "the 32x32 pair is one forward pass, the 40x32 image another"
    );
    assert_eq!(first.await.unwrap().json["score"], 30.0);
    let widths: Vec<f64> = futures_all(others).await;
    assert_eq!(
        widths,
        [32.0, 40.0, 32.0],
        "each answer goes to its own request"
    );
    server.stop().await;
}

async fn futures_all(handles: Vec<tokio::task::JoinHandle<Reply>>) -> Vec<f64> {
    let mut out = Vec::new();
    for h in handles {
        let r = h.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        out.push(r.json["score"].as_f64().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let (load, mut gate) = gated();
    let server = Server::start(load, opts(1, 1)).await;
    let client = client();
    let first = server.spawn_post(&client, png_bytes(30, 20));
    assert_eq!(gate.entered.recv().await, Some(1));
    let resp = client
        .post(format!("{}/score", server.url))
        .body(png_bytes(10, 10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body = reply(resp).await.json;
    assert!(
        body["error"].as_str().unwrap().contains("--queue"),
        "{body}"
    );
    gate.release.send(()).unwrap();
    assert_eq!(first.await.unwrap().status, 200);
    // Room again once the first is answered.
    gate.release.send(()).unwrap();
    let again = server.post_bytes(&client, png_bytes(12, 10)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_bad_images_get_clear_errors() {
    let (load, gate) = gated();
    let mut o = opts(1, 4);
    o.max_body_bytes = 4000;
    o.max_image_pixels = 5000;
    let server = Server::start(load, o).await;
    let client = client();
    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "over the body limit",
            server.post_bytes(&client, vec![0u8; 5000]).await,
            413,
            "--max-body-bytes",
        ),
        (
            "over the body limit, multipart",
            server
                .post_form(&client, &[("big.png", vec![0u8; 5000])])
                .await,
            413,
            "--max-body-bytes",
        ),
        (
            "over the pixel limit",
            server.post_bytes(&client, flat_png_bytes(100, 60)).await,
            413,
            "100x60 = 6000 pixels, more than the server's --max-image-pixels 5000",
        ),
        (
            "not an image",
            server
                .post_bytes(&client, b"hello, not an image".to_vec())
                .await,
            415,
            "not an image",
        ),
        (
            "truncated",
            server
                .post_bytes(&client, png_bytes(40, 40)[..60].to_vec())
                .await,
            400,
            "the request body",
        ),
        (
            "empty",
            server.post_bytes(&client, Vec::new()).await,
            400,
            "empty image",
        ),
        (
            "two files",
            server
                .post_form(
                    &client,
                    &[("a.png", png_bytes(8, 8)), ("b.png", png_bytes(8, 8))],
                )
                .await,
            400,
            "one image per request",
        ),
        (
            "corrupt, multipart",
            server
                .post_form(&client, &[("bad.jpg", b"\xff\xd8\xff junk".to_vec())])
                .await,
            400,
            "bad.jpg",
        ),
    ];
    for (what, reply, status, needle) in cases {
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
        let msg = reply.json["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{what}: {msg}");
    }
    let no_file = client
        .post(format!("{}/score", server.url))
        .multipart(reqwest::multipart::Form::new().text("note", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status(), 400);
    drop(gate);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_the_requests_in_flight_then_stops() {
    let (load, mut gate) = gated();
    let server = Server::start(load, opts(1, 4)).await;
    let client = client();
    let in_flight = server.spawn_post(&client, png_bytes(30, 20));
    assert_eq!(gate.entered.recv().await, Some(1));
    let url = server.url.clone();
    let stopped = server.begin_stop();
    // New connections are refused once the listener is closed...
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut refused = false;
    for _ in 0..200 {
        if fresh.get(format!("{url}/healthz")).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        refused,
        "the server kept accepting connections after shutdown began"
    );
    // ...while the request already received is still answered.
    gate.release.send(()).unwrap();
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json["score"], 30.0);
    stopped.await.unwrap().unwrap();
}

#[test]
fn the_binary_serves_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_normiqa"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--device",
            "cpu",
            "--model",
        ])
        .arg(shipped_model_dir())
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let url = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("serve ended before listening:\n{log}");
        };
        log.push_str(&line);
        log.push('\n');
        if let Some(i) = line.find("http://") {
            break line[i..]
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let health = rt.block_on(async {
        let c = client();
        c.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(health.contains("clive-efficientnet-lite0"), "{health}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    for line in lines.map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
    }
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
}

#[test]
fn bad_options_name_the_option() {
    let run = |args: &[&str]| {
        let cli = <normiqa::cli::Cli as clap::Parser>::try_parse_from(
            ["normiqa", "serve"].iter().chain(args),
        )
        .unwrap();
        format!("{:#}", normiqa::cli::run(cli).unwrap_err())
    };
    assert!(run(&["--queue", "0"]).contains("--queue 0"));
    let model = shipped_model_dir();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let err = run(&["--bind", &addr, "--model", model.to_str().unwrap()]);
    assert!(err.contains(&format!("--bind {addr}")), "{err}");
    let err = run(&[
        "--model",
        Path::new("no-such-run").to_str().unwrap(),
        "--bind",
        "127.0.0.1:0",
    ]);
    assert!(err.contains("no-such-run"), "{err}");
}

#[test]
fn the_model_scores_a_mixed_size_batch_in_request_order_as_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        write_image(tmp.path(), "b.png", 48, 40, 2),
        write_image(tmp.path(), "d.png", 40, 56, 3),
        write_image(tmp.path(), "c.png", 48, 40, 4),
    ];
    // fp32 on both sides: the tolerance below is fp32's batch-2 vs batch-1 rounding.
    let expected = predict_scores_at(&files, tmp.path(), "fp32");
    let (_, mut scorer) =
        serve::model::load(&shipped_model_dir(), tch::Device::Cpu, None, Precision::Fp32, Default::default()).unwrap();
    let images: Vec<image::RgbImage> = files
        .iter()
        .map(|f| image::open(f).unwrap().into_rgb8())
        .collect();
    let got = scorer.score(&images).unwrap();
    // b and c run as one forward pass of two: equal to predict's batch-1 scores up to float
    // rounding; the order must be the request order, not the size order. Rounding: fp32's
    // 6e-8 per operation, accumulated in another order for a batch of two (and on AVX2 than
    // on AVX-512 kernels) over Lite0's depth, moved a score of -33.5 by 1.1e-4 (3.3e-6
    // relative) on AVX2; 1e-4 + 1e-5·|score| covers that threefold, while a score of another
    // image is off by whole MOS points.
    for ((f, g), e) in files.iter().zip(&got).zip(&expected) {
        assert!(
            (g - e).abs() < 1e-4 + 1e-5 * e.abs(),
            "{}: served {g}, predict {e}",
            f.display()
        );
    }
    assert!(
        (expected[0] - expected[2]).abs() > 1e-3,
        "b and c must differ to test the order"
    );
}

/// The shipped model on the CPU in fp32, as `serve --precision fp32` loads it.
fn fp32_loader() -> serve::LoadModel {
    Box::new(|| {
        let (info, s) = serve::model::load(&shipped_model_dir(), tch::Device::Cpu, None, Precision::Fp32, Default::default())?;
        Ok((info, Box::new(s) as Box<dyn Scorer>))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_model_workers_answer_concurrent_requests_with_predicts_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..6)
        .map(|i| write_image(tmp.path(), &format!("w{i}.png"), 40 + 8 * (i % 2), 48, i))
        .collect();
    let expected = predict_scores_at(&files, tmp.path(), "fp32");
    let server = Server::start_workers(vec![fp32_loader(), fp32_loader(), fp32_loader()], opts(1, 16)).await;
    let client = client();
    let pending: Vec<_> = files
        .iter()
        .map(|f| server.spawn_post(&client, std::fs::read(f).unwrap()))
        .collect();
    for ((f, p), want) in files.iter().zip(pending).zip(&expected) {
        let r = p.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let got = r.json["score"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-3, "{}: served {got}, predict {want}", f.display());
    }
    server.stop().await;
}

/// A scorer whose forward fails as libtorch's does on an allocation it cannot make (a panic
/// whose text carries the C++ trace) for images 13 px wide, gives NaN for 17 px wide ones, and
/// the width for others.
struct Faulty;

impl Scorer for Faulty {
    fn score(&mut self, images: &[image::RgbImage]) -> anyhow::Result<Vec<f64>> {
        if images.iter().any(|im| im.width() == 13) {
            panic!("called `Result::unwrap()` on an `Err` value: Torch(\"DefaultCPUAllocator: not enough memory: you tried to allocate 9663676416 bytes.\\nException raised from alloc_cpu at /pytorch/c10/core/impl/alloc_cpu.cpp:117 (most recent call first):\\nframe #0: c10::Error::Error\")");
        }
        Ok(images.iter().map(|im| if im.width() == 17 { f64::NAN } else { im.width() as f64 }).collect())
    }
}

/// A failed forward answers its own request with libtorch's message, never its C++ trace, and
/// the worker goes on; a non-finite score is an error, never a 200 with `"score": null`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_forward_or_a_nan_score_is_an_error_of_its_request_only() {
    let load: serve::LoadModel = Box::new(|| {
        let info = ModelInfo {
            name: "faulty".into(),
            trained_on: "test".into(),
            precision: Precision::Fp32,
            tta: normiqa::infer::TestTime::default(),
        };
        Ok((info, Box::new(Faulty) as Box<dyn Scorer>))
    });
    let server = Server::start(load, opts(1, 4)).await;
    let client = client();
    let oom = server.post_bytes(&client, png_bytes(13, 8)).await;
    assert_eq!(oom.status, 500, "{}", oom.body);
    let msg = oom.json["error"].as_str().unwrap_or_default();
    assert!(msg.contains("not enough memory"), "{msg}");
    assert!(!oom.body.contains("Exception raised from") && !oom.body.contains("frame #"), "{}", oom.body);
    let nan = server.post_bytes(&client, png_bytes(17, 8)).await;
    assert_eq!(nan.status, 500, "{}", nan.body);
    assert!(nan.json["error"].as_str().unwrap_or_default().contains("non-finite"), "{}", nan.body);
    let fine = server.post_bytes(&client, png_bytes(20, 8)).await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    assert_eq!(fine.json["score"], 20.0);
    server.stop().await;
}

/// Slow and silent clients cannot hold the service (loopback, short timeouts, every wait bounded
/// so that a regression fails instead of hanging): a client that never finishes its headers, or
/// opens a connection and sends nothing, is disconnected after the header timeout; one that
/// trickles its body gets 408 after the body timeout and frees its request slot; a shutdown
/// waits for a trickling request at most the shutdown grace.
/// Sends `text` on a fresh loopback connection to `addr` and reads until the server closes it,
/// for at most 5 s: what it answered, and whether it closed the connection in that time.
fn raw_exchange(addr: &str, text: &str) -> (String, bool) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(text.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let closed = s.read_to_end(&mut buf).is_ok();
    (String::from_utf8_lossy(&buf).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_by_the_header_body_and_shutdown_timeouts() {
    let (load, gate) = gated();
    let mut o = opts(1, 2);
    o.timeouts = serve::Timeouts {
        idle: Duration::from_millis(300),
        header: Duration::from_millis(300),
        body: Duration::from_millis(300),
        shutdown_grace: Duration::from_millis(300),
        ..Default::default()
    };
    let server = Server::start(load, o).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let exchange = |text: &'static str| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || raw_exchange(&addr, text))
    };
    for first in ["", "POST /score HTTP/1.1\r\nHost: x\r\n"] {
        let (_, closed) = exchange(first).await.unwrap();
        assert!(closed, "a client that sent {first:?} was not disconnected within 5 s");
    }
    let trickle = "POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789";
    for _ in 0..2 {
        let (answer, closed) = exchange(trickle).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("--body-timeout"), "{answer}");
        assert!(closed, "{answer}");
    }
    // Both slots (--queue 2) are free again.
    let health = server.get(&client(), "/healthz").await;
    assert_eq!(health.json["requests"], 0, "{}", health.body);
    // A request still trickling when the shutdown begins (the default body timeout, 60 s) is
    // cut off after the grace.
    let mut o = opts(1, 2);
    o.timeouts.shutdown_grace = Duration::from_millis(300);
    drop(gate);
    let (load, gate) = gated();
    let slow = Server::start(load, o).await;
    let mut held = std::net::TcpStream::connect(slow.url.trim_start_matches("http://")).unwrap();
    std::io::Write::write_all(&mut held, trickle.as_bytes()).unwrap();
    slow.wait_until(&client(), |h| h["requests"] == 1).await;
    tokio::time::timeout(Duration::from_secs(5), slow.stop())
        .await
        .expect("the shutdown waited for the trickling client");
    drop(held);
    server.stop().await;
    drop(gate);
}

/// The idle limit is its own (`--idle-timeout`), not the header timeout's: with a 30 s header
/// timeout, a kept-alive connection after its answer and a new one that sends nothing are closed
/// after the 300 ms idle timeout; and with a 30 s idle timeout, headers begun but never finished
/// are cut off after the 300 ms header timeout. (hyper's header timer, the only one before,
/// runs from when it waits for a request: one limit for both.) Each wait bounded by 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_unfinished_headers_have_their_own_timeouts() {
    let (load, gate) = gated();
    let mut o = opts(1, 2);
    o.timeouts.idle = Duration::from_millis(300);
    o.timeouts.header = Duration::from_secs(30);
    let server = Server::start(load, o).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let exchange = |addr: String, text: &'static str| tokio::task::spawn_blocking(move || raw_exchange(&addr, text));
    let (answer, closed) = exchange(addr.clone(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "a kept-alive connection was still open 5 s after its answer: {answer}");
    let (_, closed) = exchange(addr.clone(), "").await.unwrap();
    assert!(closed, "a connection that sent nothing was still open after 5 s");
    server.stop().await;

    let (load2, gate2) = gated();
    let mut o = opts(1, 2);
    o.timeouts.idle = Duration::from_secs(30);
    o.timeouts.header = Duration::from_millis(300);
    let server = Server::start(load2, o).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let (_, closed) = exchange(addr, "POST /score HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    assert!(closed, "unfinished headers were not cut off within 5 s");
    server.stop().await;
    drop((gate, gate2));
}

/// A client that sends requests and never reads the answers does not hold its connection: once
/// writing to it makes no progress for `--write-timeout` (300 ms) the connection is closed, so a
/// shutdown with a 60 s grace ends within 10 s (it waited for the whole grace before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_is_cut_off_by_the_write_timeout() {
    let (load, gate) = gated();
    let mut o = opts(1, 2);
    o.timeouts.write = Duration::from_millis(300);
    o.timeouts.shutdown_grace = Duration::from_secs(60);
    let server = Server::start(load, o).await;
    let addr: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    // A small receive buffer, so that the unread answers (GET /, ~5 KB each) fill it soon.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap().into_std().unwrap();
    let writer = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut stream = stream;
        stream.set_nonblocking(false).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let requests = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4000);
        // (the server stops reading once its writes block: this may time out; never read)
        let _ = stream.write_all(requests.as_bytes());
        stream
    });
    let held = writer.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("the shutdown waited for a client that reads none of its answers");
    drop((held, gate));
}

/// 64 clients trickling their bodies with `--queue 64` hold every request slot only until the
/// body timeout (1 s here): meanwhile another client gets 503 at once (never a hang), then each
/// trickler gets 408 and the other client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_trickling_clients_hold_the_slots_only_for_the_body_timeout() {
    let (load, gate) = gated();
    let mut o = opts(1, 64);
    o.timeouts.body = Duration::from_secs(1);
    let server = Server::start(load, o).await;
    let addr = server.url.trim_start_matches("http://").to_string();
    let trickle = "POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789";
    let tricklers: Vec<_> = (0..64)
        .map(|_| {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || raw_exchange(&addr, trickle))
        })
        .collect();
    server.wait_until(&client(), |h| h["requests"] == 64).await;
    let c = client();
    let busy = tokio::time::timeout(Duration::from_secs(5), server.post_bytes(&c, png_bytes(8, 8)))
        .await
        .expect("a request while the slots are held was not answered at once");
    assert_eq!(busy.status, 503, "{}", busy.body);
    for t in tricklers {
        let (answer, closed) = t.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408") && closed, "{answer}");
    }
    drop(gate);
    let fine = server.post_bytes(&c, png_bytes(20, 10)).await;
    assert_eq!(fine.status, 200, "{}", fine.body);
    server.stop().await;
}

/// An image whose scoring would take more than the server's `--max-image-memory` (1 MB here:
/// 200x200 px at ~345 bytes a pixel for Lite0 is ~14 MB) is an error of its request naming the
/// bound and the `--max-side` that fits, before libtorch allocates; a small one is scored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_over_the_memory_bound_is_an_error_of_its_request() {
    let load: serve::LoadModel = Box::new(|| {
        let (info, s) = serve::model::load(
            &shipped_model_dir(),
            tch::Device::Cpu,
            None,
            Precision::Fp32,
            Default::default(),
        )?;
        Ok((info, Box::new(s.with_max_image_memory(1 << 20)) as Box<dyn serve::Scorer>))
    });
    let server = Server::start(load, opts(1, 4)).await;
    let c = client();
    let big = server.post_bytes(&c, png_bytes(200, 200)).await;
    assert_eq!(big.status, 500, "{}", big.body);
    let msg = big.json["error"].as_str().unwrap_or_default();
    assert!(msg.contains("200x200") && msg.contains("--max-image-memory 1 MB") && msg.contains("--max-side"), "{msg}");
    let small = server.post_bytes(&c, png_bytes(24, 16)).await;
    assert_eq!(small.status, 200, "{}", small.body);
    server.stop().await;
}
