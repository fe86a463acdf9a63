//! The web page of `normiqa serve` in a real browser: headless Chromium (Debian's `chromium`)
//! opens the page, photos are put in its file input as a person's file chooser would, and the
//! scores the page shows must equal `normiqa predict`'s. Skipped, with a notice, when no
//! chromium is installed (`.ci/run` installs it). With NORMIQA_SERVE_SCREENSHOT=FILE.png the
//! test also saves a screenshot of the scored page (docs/figures/serve-page.png is one).

mod serve_common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serve_common::*;

/// CLIVE sample photos of high, middling and low MOS.
const PHOTOS: [&str; 3] = ["780.JPG", "553.JPG", "678.JPG"];

/// $NORMIQA_CHROMIUM, or the first of chromium / chromium-browser / google-chrome on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NORMIQA_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_predicts_scores_for_chosen_photos() {
    let Some(chrome) = chromium() else {
        eprintln!(
            "NOTICE: the_page_shows_predicts_scores_for_chosen_photos skipped: no chromium on \
             PATH (apt-get install -y chromium, or set NORMIQA_CHROMIUM)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/clive-sample/images");
    let photos: Vec<PathBuf> = PHOTOS.iter().map(|p| images.join(p)).collect();
    let expected = predict_scores(&photos, tmp.path());
    let opts = normiqa::serve::ServeOptions {
        max_batch: 1,
        max_wait: Duration::ZERO,
        queue: 8,
        max_body_bytes: 32 << 20,
        max_image_pixels: 0,
        timeouts: Default::default(),
    };
    let server = Server::start(shipped_model_loader(), opts).await;
    let url = server.url.clone();
    let paths = photos.clone();
    let (shown, model_line, png) =
        tokio::task::spawn_blocking(move || drive(&chrome, &url, &paths))
            .await
            .unwrap()
            .unwrap();
    server.stop().await;
    assert!(
        model_line.contains("clive-efficientnet-lite0") && model_line.contains("CLIVE"),
        "{model_line}"
    );
    for (photo, want) in PHOTOS.iter().zip(&expected) {
        let got = shown
            .iter()
            .find(|(name, _)| name == photo)
            .unwrap_or_else(|| panic!("{photo} not on the page: {shown:?}"));
        assert_eq!(got.1, *want, "{photo}");
    }
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    if let Some(out) = std::env::var_os("NORMIQA_SERVE_SCREENSHOT") {
        std::fs::write(&out, &png).unwrap();
        eprintln!("screenshot: {}", Path::new(&out).display());
    }
}

/// Opens the page, chooses `photos` in its file input, waits for every score; returns
/// (file name, score shown) per card, the model line and a PNG screenshot.
fn drive(
    chrome: &Path,
    url: &str,
    photos: &[PathBuf],
) -> Result<(Vec<(String, f64)>, String, Vec<u8>)> {
    let profile = tempfile::tempdir()?;
    let options = LaunchOptions::default_builder()
        .path(Some(chrome.to_path_buf()))
        .headless(true)
        .sandbox(false)
        .user_data_dir(Some(profile.path().to_path_buf()))
        .window_size(Some((1000, 620)))
        .idle_browser_timeout(Duration::from_secs(120))
        .args(
            [
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ]
            .iter()
            .map(OsStr::new)
            .collect(),
        )
        .build()?;
    let browser = Browser::new(options).context("starting chromium")?;
    let tab = browser.new_tab()?;
    tab.set_default_timeout(Duration::from_secs(60));
    tab.navigate_to(url)?.wait_until_navigated()?;
    let files: Vec<&str> = photos.iter().map(|p| p.to_str().unwrap()).collect();
    tab.wait_for_element("#files")?.set_input_files(&files)?;
    wait_for_scores(&tab, photos.len())?;
    let cards = eval(
        &tab,
        "JSON.stringify([...document.querySelectorAll('.card')].map(c => [c.dataset.name, c.dataset.score]))",
    )?;
    let cards: Vec<(String, String)> = serde_json::from_str(cards.as_str().context("cards")?)?;
    let shown = cards
        .into_iter()
        .map(|(name, score)| Ok((name, score.parse::<f64>()?)))
        .collect::<Result<Vec<_>>>()?;
    let model = eval(&tab, "document.getElementById('model').textContent")?;
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)?;
    Ok((shown, model.as_str().unwrap_or_default().to_string(), png))
}

fn eval(tab: &Tab, js: &str) -> Result<serde_json::Value> {
    tab.evaluate(js, false)?
        .value
        .with_context(|| format!("no value from {js}"))
}

/// Polls the page until `n` cards are scored; fails on a card showing an error.
fn wait_for_scores(tab: &Tab, n: usize) -> Result<()> {
    for _ in 0..1200 {
        let state = eval(
            tab,
            "JSON.stringify({done: document.querySelectorAll('.card[data-state=done]').length, \
             error: [...document.querySelectorAll('.card[data-state=error] .score')].map(e => e.textContent)})",
        )?;
        let state: serde_json::Value = serde_json::from_str(state.as_str().unwrap_or("{}"))?;
        if let Some(err) = state["error"].as_array().and_then(|e| e.first()) {
            bail!("the page shows an error: {err}");
        }
        if state["done"].as_u64() == Some(n as u64) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the page did not show {n} scores within two minutes")
}
