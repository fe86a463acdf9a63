//! normiqa's log lines (the `tracing` events the CLI prints on stderr: epochs, losses, test
//! metrics, warnings) handed to Python: to the progress callback of the running call when one
//! is set ([`set_progress`]), else to Python's `logging` (logger "normiqa").
//!
//! Events come from any thread (the trainer's, the inference workers'); each call into Python
//! takes the GIL for its duration only. An exception raised by the callback is kept and the
//! first one is returned by [`set_progress`] when the caller clears it (the run is not stopped
//! midway: the trainer has no cancellation point).

use std::sync::Mutex;

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The callback of the running call, and the first exception it raised.
static PROGRESS: Mutex<Option<Py<PyAny>>> = Mutex::new(None);
static FAILED: Mutex<Option<PyErr>> = Mutex::new(None);

/// The message of an event: its `message` field, then the other fields as `name=value`.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

struct ToPython;

impl<S: Subscriber> Layer<S> for ToPython {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::INFO {
            return;
        }
        let mut msg = Message::default();
        event.record(&mut msg);
        let name = level.as_str().to_ascii_lowercase();
        Python::attach(|py| {
            let cb = PROGRESS.lock().ok().and_then(|g| g.as_ref().map(|c| c.clone_ref(py)));
            let r = match cb {
                Some(cb) => cb.call1(py, (name.as_str(), msg.0.as_str())).map(|_| ()),
                None => to_logging(py, &name, &msg.0),
            };
            if let Err(e) = r {
                if let Ok(mut f) = FAILED.lock() {
                    f.get_or_insert(e);
                }
            }
        });
    }
}

fn to_logging(py: Python<'_>, level: &str, msg: &str) -> PyResult<()> {
    let logger = py.import("logging")?.call_method1("getLogger", ("normiqa",))?;
    let method = if level == "warn" { "warning" } else { level };
    logger.call_method1(method, ("%s", msg))?;
    Ok(())
}

/// Installs the layer as the process's tracing subscriber (once; a no-op if the embedding
/// program installed one already).
pub fn install() {
    let subscriber = tracing_subscriber::registry().with(ToPython);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Sets the callback `progress(level, message)` that receives normiqa's log lines (None: back
/// to `logging`). Clearing it raises the first exception the callback raised meanwhile.
#[pyfunction]
#[pyo3(signature = (callback=None))]
pub fn set_progress(callback: Option<Py<PyAny>>) -> PyResult<()> {
    let clearing = callback.is_none();
    *PROGRESS.lock().map_err(|_| crate::py_err("progress lock poisoned"))? = callback;
    if clearing {
        if let Some(e) = FAILED.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
    } else if let Ok(mut f) = FAILED.lock() {
        f.take();
    }
    Ok(())
}
