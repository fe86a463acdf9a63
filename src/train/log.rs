//! The run's JSONL log: one JSON object per line, flushed as written, so an interrupted run keeps
//! everything up to its last epoch. Events: `start`, `iter` (loss, b̂ per step), `epoch`,
//! `resume` (a resumed run goes on from here), `constant_mos_batch` (a batch whose MOS are all
//! equal: `constant_mos.rs`), `end`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

pub struct JsonlLog {
    out: BufWriter<File>,
}

impl JsonlLog {
    /// Creates (truncating) the log file.
    pub fn create(path: &Path) -> Result<Self> {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        Ok(JsonlLog {
            out: BufWriter::new(f),
        })
    }

    /// Opens an existing log for appending after cutting it to its first `len` bytes (a resumed
    /// run drops what the interrupted epoch had written).
    pub fn append_at(path: &Path, len: u64) -> Result<Self> {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        f.set_len(len)
            .with_context(|| format!("truncating {}", path.display()))?;
        let mut out = BufWriter::new(f);
        use std::io::Seek;
        out.seek(std::io::SeekFrom::Start(len))?;
        Ok(JsonlLog { out })
    }

    /// Bytes written so far (everything is flushed after each event).
    pub fn bytes_written(&mut self) -> Result<u64> {
        use std::io::Seek;
        Ok(self.out.stream_position()?)
    }

    /// Writes one event: `{"event": name, ...fields}`.
    pub fn write<T: Serialize>(&mut self, event: &str, fields: &T) -> Result<()> {
        let mut v = serde_json::to_value(fields)?;
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("event".into(), event.into());
        }
        serde_json::to_writer(&mut self.out, &v)?;
        self.out.write_all(b"\n")?;
        self.out.flush()?;
        Ok(())
    }
}
