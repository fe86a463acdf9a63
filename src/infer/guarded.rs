//! Scoring that fails per image, never per process: libtorch's errors (an allocation that fails
//! on a large photo, a shape it refuses) surface as Rust panics inside tch's forward calls. They
//! are caught here, the images of a failed batch are scored again one by one so that only the
//! image at fault fails, and the error is libtorch's message without its C++ stack trace. A
//! non-finite score is an error of its image (issue 26, items 4 and 9).

use std::panic::{catch_unwind, AssertUnwindSafe};

use image::RgbImage;

use super::trained::TrainedModel;

/// One image's mapped score and raw head outputs, or why it has none.
pub type ImageScore = Result<(f64, Vec<f64>), String>;

/// Scores `images` (in batches of at most `batch` same-size images); one result per image.
pub fn score_each(tm: &TrainedModel, images: &[RgbImage], batch: usize) -> Vec<ImageScore> {
    match caught(|| tm.score(images, batch)) {
        Ok(s) => (0..images.len())
            .map(|i| finite(s.mapped[i], s.heads.iter().map(|h| h[i]).collect()))
            .collect(),
        Err(e) if images.len() == 1 => vec![Err(failure(&e, &images[0]))],
        Err(_) => images
            .iter()
            .flat_map(|im| score_each(tm, std::slice::from_ref(im), 1))
            .collect(),
    }
}

fn finite(mapped: f64, heads: Vec<f64>) -> ImageScore {
    match mapped.is_finite() {
        true => Ok((mapped, heads)),
        false => Err(format!("the model gave a non-finite score ({mapped}); it cannot score this image")),
    }
}

fn failure(e: &str, im: &RgbImage) -> String {
    let (w, h) = im.dimensions();
    format!("scoring the {w}x{h} image failed: {e} (a large image may need more memory than there is: --max-side N downscales it)")
}

/// Runs `f`, turning its error or panic into a message without libtorch's stack trace.
pub fn caught<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(short_error(&crate::cli::error_text(&e))),
        Err(panic) => Err(short_error(&panic_text(panic.as_ref()))),
    }
}

/// The text of a panic payload.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "no message".into())
}

/// libtorch's message less its C++ stack trace ("Exception raised from ...", "frame #0: ...")
/// and tch's wrapping (`called Result::unwrap() on an Err value: Torch("...")`), on one line.
pub fn short_error(text: &str) -> String {
    let mut s = text;
    for cut in ["\\nException raised from", "\nException raised from", "\\nframe #", "\nframe #"] {
        if let Some(i) = s.find(cut) {
            s = &s[..i];
        }
    }
    let s = match s.rsplit_once("Torch(\"") {
        Some((_, inner)) => inner.trim_end_matches(['"', ')']),
        None => s,
    };
    let s = s.replace("\\n", " ");
    let line = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    match line.is_empty() {
        true => "libtorch failed without a message".into(),
        false => line,
    }
}
