//! The one font of every plot: DejaVu Sans, embedded in the binary (`assets/fonts`, with its
//! licence), registered as "sans-serif" so plots render the same on any machine.

use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::style::FontStyle;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font (once per process).
pub fn register() -> Result<()> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .iter()
            .all(|s| plotters::style::register_font("sans-serif", *s, FONT).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded DejaVu Sans font could not be loaded"))
    }
}
