//! The run's JSONL log: one JSON object per line, flushed as written, so an interrupted run keeps
//! everything up to its last epoch. Events: `start`, `iter` (loss, b̂ per step), `epoch`, `end`.

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
