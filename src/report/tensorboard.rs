//! TensorBoard event files from a run's `log.jsonl` (`normiqa report --tensorboard`), so that
//! TensorBoard (or any reader of its format) shows the same curves as the reference's
//! `--test_during_training` runs.
//!
//! The format is small and stable: TFRecord framing (u64 length, masked CRC-32C of the length,
//! the bytes, masked CRC-32C of the bytes) of `Event` protocol buffers with a scalar `Summary`.
//! It is written here directly (about 80 lines) rather than with a crate: the Rust TensorBoard
//! writer crates are unmaintained and pull in a protobuf toolchain, and JSONL stays the primary
//! log (written while training; the events are derived from it at any time).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value as Json;

const CASTAGNOLI: u32 = 0x82F6_3B78;

/// CRC-32C (Castagnoli), bitwise reflected.
pub fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ CASTAGNOLI
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| {
        table[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// An `Event` with `wall_time`, `step` and either `file_version` or one scalar value.
fn event(
    wall_time: f64,
    step: i64,
    file_version: Option<&str>,
    scalar: Option<(&str, f32)>,
) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(0x09); // wall_time: field 1, fixed64
    e.extend_from_slice(&wall_time.to_le_bytes());
    e.push(0x10); // step: field 2, varint
    varint(&mut e, step as u64);
    if let Some(v) = file_version {
        bytes_field(&mut e, 0x1a, v.as_bytes()); // file_version: field 3
    }
    if let Some((tag, x)) = scalar {
        let mut value = Vec::new();
        bytes_field(&mut value, 0x0a, tag.as_bytes()); // Value.tag: field 1
        value.push(0x15); // Value.simple_value: field 2, fixed32
        value.extend_from_slice(&x.to_le_bytes());
        let mut summary = Vec::new();
        bytes_field(&mut summary, 0x0a, &value); // Summary.value: field 1
        bytes_field(&mut e, 0x2a, &summary); // Event.summary: field 5
    }
    e
}

fn record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked(crc32c(&len)).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked(crc32c(data)).to_le_bytes());
}

/// Writes `<dest>/events.out.tfevents.<time>.normiqa` from `<run>/log.jsonl` (the run folder is
/// only read): per iteration `train/loss`, `train/bhat`; per epoch `<set>/<metric>` of each
/// logged set (head `fused`, and `head6`/`head7` under `<set>/<head>/<metric>`), `train/lr`,
/// `train/epoch_loss`.
pub fn write_events(run_dir: &Path, dest: &Path) -> Result<PathBuf> {
    let log = run_dir.join(crate::run::info::LOG);
    let text =
        std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    let t0 = std::fs::metadata(&log)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut out = Vec::new();
    record(&mut out, &event(t0, 0, Some("brain.Event:2"), None));
    let heads = ["head6", "head7", "fused"];
    for line in text.lines() {
        let Ok(j) = serde_json::from_str::<Json>(line) else {
            continue;
        };
        let mut scalar = |step: i64, tag: &str, v: &Json| {
            if let Some(x) = v.as_f64() {
                record(&mut out, &event(t0, step, None, Some((tag, x as f32))));
            }
        };
        match j["event"].as_str() {
            Some("iter") => {
                let step = j["iter"].as_i64().unwrap_or(0);
                scalar(step, "train/loss", &j["loss"]);
                scalar(step, "train/bhat", &j["bhat"]);
            }
            Some("epoch") => {
                let step = j["epoch"].as_i64().unwrap_or(0);
                scalar(step, "train/lr", &j["lr"]);
                scalar(step, "train/epoch_loss", &j["loss"]);
                for set in ["train", "val", "test"] {
                    for (h, name) in heads.iter().enumerate() {
                        for m in ["srocc", "plcc", "krocc", "rmse"] {
                            let tag = if *name == "fused" {
                                format!("{set}/{}", m.to_uppercase())
                            } else {
                                format!("{set}/{name}/{}", m.to_uppercase())
                            };
                            scalar(step, &tag, &j[set][h][m]);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let dir = dest;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // One file per run directory: replace an older export.
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with("events.out.tfevents.")
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let path = dir.join(format!("events.out.tfevents.{}.normiqa", t0 as u64));
    crate::atomic::write(&path, &out).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn event_encoding() {
        // Event{wall_time: 1.0, step: 3, summary{value{tag: "a", simple_value: 0.5}}}
        let e = event(1.0, 3, None, Some(("a", 0.5)));
        let mut want = vec![0x09];
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 3, 0x2a, 10, 0x0a, 8, 0x0a, 1, b'a', 0x15]);
        want.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(e, want);
    }
}
