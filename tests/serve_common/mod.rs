//! Helpers of the serve tests: an in-process server on a free loopback port, a plain-HTTP
//! client, test images, and `predict`'s scores of the same files for comparison.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use normiqa::serve::{self, ServeOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An HTTP client for loopback: no proxy from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A response: status, body text, and the body as JSON (`null` when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub json: serde_json::Value,
}

pub async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
    Reply { status, body, json }
}

pub struct Server {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Loads the model (on its thread) and serves on 127.0.0.1, a free port.
    pub async fn start(load: serve::LoadModel, opts: ServeOptions) -> Server {
        Server::start_workers(vec![load], opts).await
    }

    /// [`Server::start`] with one model worker per loader.
    pub async fn start_workers(loads: Vec<serve::LoadModel>, opts: ServeOptions) -> Server {
        let service = tokio::task::spawn_blocking(move || serve::start_workers(loads, opts))
            .await
            .unwrap()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(service.run(listener, async {
            let _ = rx.await;
        }));
        Server {
            url,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn post_bytes(&self, c: &reqwest::Client, bytes: Vec<u8>) -> Reply {
        reply(
            c.post(format!("{}/score", self.url))
                .body(bytes)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A multipart form with one file field per (name, bytes).
    pub async fn post_form(&self, c: &reqwest::Client, files: &[(&str, Vec<u8>)]) -> Reply {
        let mut form = reqwest::multipart::Form::new();
        for (name, bytes) in files {
            let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string());
            form = form.part("image", part);
        }
        let resp = c
            .post(format!("{}/score", self.url))
            .multipart(form)
            .send()
            .await;
        reply(resp.unwrap()).await
    }

    pub async fn get(&self, c: &reqwest::Client, path: &str) -> Reply {
        reply(c.get(format!("{}{path}", self.url)).send().await.unwrap()).await
    }

    /// Posts in the background; the handle gives the reply.
    pub fn spawn_post(&self, c: &reqwest::Client, bytes: Vec<u8>) -> JoinHandle<Reply> {
        let (c, url) = (c.clone(), format!("{}/score", self.url));
        tokio::spawn(async move { reply(c.post(url).body(bytes).send().await.unwrap()).await })
    }

    /// Polls /healthz until `done` holds (at most ~10 s, then fails naming the last answer).
    pub async fn wait_until(&self, c: &reqwest::Client, done: impl Fn(&serde_json::Value) -> bool) {
        let mut last = serde_json::Value::Null;
        for _ in 0..400 {
            last = self.get(c, "/healthz").await.json;
            if done(&last) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the server never reached the expected state; last /healthz: {last}");
    }

    /// Signals shutdown; the handle completes once the server has drained and stopped.
    pub fn begin_stop(mut self) -> JoinHandle<anyhow::Result<()>> {
        let _ = self.stop.take().unwrap().send(());
        self.handle.take().unwrap()
    }

    pub async fn stop(self) {
        self.begin_stop().await.unwrap().unwrap();
    }
}

pub fn shipped_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/clive-efficientnet-lite0")
}

/// Loads the shipped model on the CPU, as `normiqa serve --device cpu` does.
pub fn shipped_model_loader() -> serve::LoadModel {
    Box::new(|| {
        let (info, s) = serve::model::load(
            &shipped_model_dir(),
            tch::Device::Cpu,
            None,
            normiqa::model::Precision::Auto,
            Default::default(),
        )?;
        Ok((info, Box::new(s) as Box<dyn serve::Scorer>))
    })
}

fn pattern(w: u32, h: u32, seed: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 5 + seed * 60) as u8,
            (y * 3 + x * y % 7) as u8,
            ((x + y) * 2 + seed * 30) as u8,
        ])
    })
}

/// Writes a patterned image (format from the name's extension).
pub fn write_image(dir: &Path, name: &str, w: u32, h: u32, seed: u32) -> PathBuf {
    let p = dir.join(name);
    pattern(w, h, seed).save(&p).unwrap();
    p
}

pub fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    pattern(w, h, 0)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A one-colour PNG: a few hundred bytes whatever its size.
pub fn flat_png_bytes(w: u32, h: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::RgbImage::from_pixel(w, h, image::Rgb([90, 120, 150]))
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// `normiqa predict --format json` on `files` with the shipped model, on the CPU.
pub fn predict_scores(files: &[PathBuf], tmp: &Path) -> Vec<f64> {
    predict_scores_at(files, tmp, "auto")
}

/// [`predict_scores`] with `--precision precision`.
pub fn predict_scores_at(files: &[PathBuf], tmp: &Path, precision: &str) -> Vec<f64> {
    let out = tmp.join("predict.json");
    let mut args: Vec<String> = vec!["normiqa".into(), "predict".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    for a in ["--precision", precision, "--device", "cpu", "--format", "json", "--model"] {
        args.push(a.into());
    }
    args.push(shipped_model_dir().display().to_string());
    args.extend(["-o".into(), out.display().to_string()]);
    let cli = <normiqa::cli::Cli as clap::Parser>::try_parse_from(args).unwrap();
    normiqa::cli::run(cli).unwrap();
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    // (the first element is the record of the model and options)
    let rows = &rows.as_array().unwrap()[1..];
    assert_eq!(rows.len(), files.len());
    files
        .iter()
        .map(|f| {
            let row = rows
                .iter()
                .find(|r| r["image"] == f.display().to_string())
                .unwrap();
            row["score"].as_f64().unwrap()
        })
        .collect()
}
