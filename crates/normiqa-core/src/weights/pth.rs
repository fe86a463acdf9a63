//! Reader for PyTorch `torch.save` files holding a state dict (or a checkpoint dict wrapping one).
//!
//! Two container formats are supported (detected from the first bytes):
//!
//! * **zip** (torch ≥ 1.6 default): `<prefix>/data.pkl` is a pickle whose storages are persistent
//!   ids `('storage', storage_type, key, location, numel)`; storage `key` lives raw in
//!   `<prefix>/data/<key>`; `<prefix>/byteorder` says `little` (absent in old files: little).
//!   The prefix directory name is arbitrary.
//! * **legacy** (torch < 1.6, `_use_new_zipfile_serialization=False`): concatenated pickles:
//!   magic number `0x1950a86a20f9469cfc6c`, protocol version `1001`, a sys-info dict, the object
//!   (persistent ids `('storage', storage_type, root_key, location, numel, view_metadata)`),
//!   the list of storage keys; then, for each key in that order, an `i64` element count followed
//!   by the raw bytes.
//!
//! Tensors are rebuilt from `torch._utils._rebuild_tensor_v2` / `_rebuild_tensor` /
//! `_rebuild_parameter(_with_state)` / `torch._tensor._rebuild_from_type_v2` calls and
//! materialised contiguous (row-major, little-endian) whatever their strides and offsets.

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::pickle::{self, PickleError, Value};

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The torch name (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// From a legacy typed-storage class name (`FloatStorage`, ...).
    fn from_storage_class(name: &str) -> Option<DType> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// From a torch dtype attribute name (`torch.float32`, `torch.half`, ...).
    fn from_torch_dtype(name: &str) -> Option<DType> {
        Some(match name {
            "float32" | "float" => DType::F32,
            "float64" | "double" => DType::F64,
            "float16" | "half" => DType::F16,
            "bfloat16" => DType::BF16,
            "int64" | "long" => DType::I64,
            "int32" | "int" => DType::I32,
            "int16" | "short" => DType::I16,
            "int8" => DType::I8,
            "uint8" => DType::U8,
            "bool" => DType::Bool,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor's contiguous (row-major), little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// IEEE half → f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // subnormal: normalise
            let mut e: i32 = -14;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (((e + 127) as u32) << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// bfloat16 → f32 (exact).
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

impl RawTensor {
    /// Number of elements (1 for a 0-dim tensor).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values converted to `f32` (integers and bools by value; f64 rounded).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        let d = &self.data;
        match self.dtype {
            DType::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            DType::F16 => d
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::BF16 => d
                .chunks_exact(2)
                .map(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            DType::I16 => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32)
                .collect(),
            DType::I8 => d.iter().map(|&b| b as i8 as f32).collect(),
            DType::U8 => d.iter().map(|&b| b as f32).collect(),
            DType::Bool => d.iter().map(|&b| if b != 0 { 1.0 } else { 0.0 }).collect(),
        }
    }

    /// The values converted to `f64` (exact for every dtype except large int64).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        let d = &self.data;
        match self.dtype {
            DType::F64 => d
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect(),
            _ => self.to_f32_vec().into_iter().map(f64::from).collect(),
        }
    }

    /// The values as `i64` for integer and bool dtypes; `None` for floating dtypes.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        let d = &self.data;
        Some(match self.dtype {
            DType::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::I32 => d
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            DType::I16 => d
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            DType::I8 => d.iter().map(|&b| b as i8 as i64).collect(),
            DType::U8 => d.iter().map(|&b| b as i64).collect(),
            DType::Bool => d.iter().map(|&b| (b != 0) as i64).collect(),
            _ => return None,
        })
    }
}

/// Named tensors in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    pub tensors: Vec<(String, RawTensor)>,
}

impl StateDict {
    pub fn get(&self, name: &str) -> Option<&RawTensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(n, _)| n.as_str())
    }
    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawTensor)> {
        self.tensors.iter().map(|(n, t)| (n.as_str(), t))
    }
    /// Removes `prefix` from every name that starts with it (e.g. `"module."` from DataParallel).
    pub fn strip_prefix(&mut self, prefix: &str) {
        for (n, _) in &mut self.tensors {
            if let Some(rest) = n.strip_prefix(prefix) {
                *n = rest.to_string();
            }
        }
    }
}

/// Options for [`read_pth_with`].
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Strip a leading `module.` (from `nn.DataParallel`) from tensor names.
    pub strip_module_prefix: bool,
    /// Take the tensors under this top-level key of a checkpoint dict instead of guessing.
    pub key: Option<String>,
}

/// What went wrong (see [`PthError`]).
#[derive(Debug, thiserror::Error)]
pub enum PthErrorKind {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a PyTorch torch.save file: {0}")]
    NotTorchFile(String),
    #[error("bad zip container: {0}")]
    Zip(String),
    #[error("in {what}: {err}")]
    Pickle { what: String, err: PickleError },
    #[error(
        "refused: its pickle calls {global}, which is not part of a PyTorch state dict. normiqa \
         never runs code from a weights file and, like torch.load(weights_only=True), refuses \
         files that name anything else; use weights from a source you trust, saved with \
         torch.save(model.state_dict(), path)"
    )]
    RefusedGlobal { global: String },
    #[error("unknown storage type {0}")]
    UnknownStorageType(String),
    #[error("storage '{0}' is referenced but missing from the file")]
    MissingStorage(String),
    #[error("truncated storage '{key}': expected {expected} bytes, found {found}")]
    TruncatedStorage {
        key: String,
        expected: u64,
        found: u64,
    },
    #[error("tensor '{name}': {msg}")]
    BadTensor { name: String, msg: String },
    #[error("{0}")]
    Format(String),
}

/// Error reading a `.pth` file; always names the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot read PyTorch weights {}: {kind}", path.display())]
pub struct PthError {
    pub path: PathBuf,
    pub kind: PthErrorKind,
}

type KResult<T> = Result<T, PthErrorKind>;

/// Reads the tensors of a `torch.save` file (zip or legacy format).
pub fn read_pth(path: &Path) -> Result<StateDict, PthError> {
    read_pth_with(path, &ReadOptions::default())
}

/// [`read_pth`] with options.
pub fn read_pth_with(path: &Path, opts: &ReadOptions) -> Result<StateDict, PthError> {
    let wrap = |kind| PthError {
        path: path.to_path_buf(),
        kind,
    };
    let bytes = std::fs::read(path).map_err(|e| wrap(PthErrorKind::Io(e)))?;
    read_pth_bytes_inner(&bytes, opts).map_err(wrap)
}

/// [`read_pth_with`], also returning the whole unpickled top-level object (tensors left as
/// unexecuted calls), for checkpoints that keep other values beside the state dict (e.g.
/// LinearityIQA's `{'model': ..., 'k': [...], 'b': [...]}`; read them with [`Value::get`]).
pub fn read_pth_with_top(path: &Path, opts: &ReadOptions) -> Result<(StateDict, Value), PthError> {
    let wrap = |kind| PthError {
        path: path.to_path_buf(),
        kind,
    };
    let bytes = std::fs::read(path).map_err(|e| wrap(PthErrorKind::Io(e)))?;
    read_bytes_top(&bytes, opts).map_err(wrap)
}

/// Reads from an in-memory copy of a file; `name` is used in errors.
pub fn read_pth_bytes(
    bytes: &[u8],
    name: &Path,
    opts: &ReadOptions,
) -> Result<StateDict, PthError> {
    read_pth_bytes_inner(bytes, opts).map_err(|kind| PthError {
        path: name.to_path_buf(),
        kind,
    })
}

fn read_pth_bytes_inner(bytes: &[u8], opts: &ReadOptions) -> KResult<StateDict> {
    read_bytes_top(bytes, opts).map(|(sd, _)| sd)
}

fn read_bytes_top(bytes: &[u8], opts: &ReadOptions) -> KResult<(StateDict, Value)> {
    let (mut sd, top) = if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        read_zip(bytes, opts)?
    } else if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        return Err(PthErrorKind::NotTorchFile(
            "tar-based torch format (torch < 0.4) is not supported".into(),
        ));
    } else {
        read_legacy(bytes, opts)?
    };
    if opts.strip_module_prefix {
        sd.strip_prefix("module.");
    }
    Ok((sd, top))
}

// ---------------------------------------------------------------------------
// which globals a state-dict pickle may name

/// Whether a state-dict pickle may name `module.name`: tensor and storage rebuilding, dtypes,
/// containers, and the plain-data types research checkpoints carry next to the state dict
/// (`argparse.Namespace`, numpy scalars and arrays) — `torch.load(weights_only=True)`'s list
/// plus those. Anything else (`os.system`, `builtins.eval`, ...) is refused before use.
pub fn allowed_global(module: &str, name: &str) -> bool {
    const DATA_BUILTINS: &[&str] = &[
        "set",
        "frozenset",
        "bytearray",
        "bytes",
        "slice",
        "complex",
        "range",
        "list",
        "dict",
        "tuple",
        "int",
        "float",
        "str",
        "bool",
        "object",
    ];
    const NUMPY: &[&str] = &["_reconstruct", "scalar", "ndarray", "dtype"];
    match module {
        "torch._utils" => name.starts_with("_rebuild_"),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch" => {
            name.ends_with("Storage")
                || matches!(
                    name,
                    "Size" | "Tensor" | "device" | "dtype" | "layout" | "strided"
                )
                || torch_dtype_name(name)
        }
        "torch.storage" | "torch.cuda" => name.ends_with("Storage"),
        "torch.nn.parameter" => name == "Parameter",
        "torch.serialization" => name == "_get_layout",
        "collections" => matches!(name, "OrderedDict" | "Counter" | "defaultdict"),
        "_codecs" => name == "encode",
        "copyreg" => name == "_reconstructor",
        "builtins" | "__builtin__" => DATA_BUILTINS.contains(&name),
        "argparse" => name == "Namespace",
        "numpy" | "numpy.core.multiarray" | "numpy._core.multiarray" => NUMPY.contains(&name),
        "numpy.dtypes" => name.ends_with("DType"),
        _ => false,
    }
}

/// torch dtype objects pickled as `torch.<name>`.
fn torch_dtype_name(name: &str) -> bool {
    DType::from_torch_dtype(name).is_some()
        || matches!(
            name,
            "complex32"
                | "complex64"
                | "complex128"
                | "cfloat"
                | "cdouble"
                | "chalf"
                | "uint16"
                | "uint32"
                | "uint64"
                | "float8_e4m3fn"
                | "float8_e5m2"
                | "qint8"
                | "quint8"
                | "qint32"
                | "quint4x2"
        )
}

/// Unpickles a state-dict object, refusing globals outside [`allowed_global`].
fn load_state_pickle(
    data: &[u8],
    start: usize,
    what: &str,
) -> KResult<(Value, usize, Vec<Rc<Value>>)> {
    pickle::load_restricted(data, start, allowed_global).map_err(|err| match err {
        PickleError::RefusedGlobal { module, name, .. } => PthErrorKind::RefusedGlobal {
            global: format!("{module}.{name}"),
        },
        err => PthErrorKind::Pickle {
            what: what.to_string(),
            err,
        },
    })
}

// ---------------------------------------------------------------------------
// tensor specs extracted from the pickle

#[derive(Debug, Clone)]
struct StorageRef {
    key: String,
    dtype: DType,
    /// Element count given in the persistent id (of the root storage).
    numel: u64,
    /// Legacy storage view: (offset, size) in elements within the root storage.
    view: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
struct TensorSpec {
    storage: StorageRef,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

/// `1, 2, 3`: numbers as a person writes them, for messages.
fn join<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(", ")
}

fn fmt_err(msg: impl Into<String>) -> PthErrorKind {
    PthErrorKind::Format(msg.into())
}

fn value_to_key(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.to_string()),
        Value::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_string),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn to_u64(v: &Value, what: &str) -> KResult<u64> {
    match v.as_int() {
        Some(i) if i >= 0 => Ok(i as u64),
        _ => Err(fmt_err(format!(
            "{what}: expected a non-negative int, got {}",
            v.kind()
        ))),
    }
}

fn to_u64_seq(v: &Value, what: &str) -> KResult<Vec<u64>> {
    let seq = match v {
        // torch.Size(...) pickles as a REDUCE of torch.Size on a tuple
        Value::Object(o) if o.borrow().callable.as_global() == Some(("torch", "Size")) => {
            let o = o.borrow();
            o.args
                .as_seq()
                .and_then(|a| a.first().cloned())
                .and_then(|a| a.as_seq())
        }
        _ => v.as_seq(),
    }
    .ok_or_else(|| fmt_err(format!("{what}: expected a tuple, got {}", v.kind())))?;
    seq.iter().map(|x| to_u64(x, what)).collect()
}

/// Interprets a storage persistent id.
fn parse_storage(pid: &Value) -> KResult<StorageRef> {
    let t = pid.as_seq().ok_or_else(|| {
        fmt_err(format!(
            "persistent id is a {}, expected a tuple",
            pid.kind()
        ))
    })?;
    if t.first().and_then(value_to_key).as_deref() != Some("storage") || t.len() < 5 {
        return Err(fmt_err(format!("unsupported persistent id (expected ('storage', type, key, location, numel)), got a {}-tuple", t.len())));
    }
    let dtype = match t[1].as_global() {
        Some(("torch", name)) | Some(("torch.storage", name)) | Some(("torch.cuda", name)) => {
            if let Some(d) = DType::from_storage_class(name) {
                d
            } else if name == "UntypedStorage" || name == "_UntypedStorage" {
                DType::U8
            } else if let Some(d) = DType::from_torch_dtype(name) {
                d
            } else if name == "TypedStorage" || name == "_TypedStorage" {
                // a dtype object may follow the standard fields
                t.iter()
                    .skip(5)
                    .find_map(|v| match v.as_global() {
                        Some(("torch", n)) => DType::from_torch_dtype(n),
                        _ => None,
                    })
                    .ok_or_else(|| {
                        PthErrorKind::UnknownStorageType(format!(
                            "torch.storage.{name} without a dtype"
                        ))
                    })?
            } else {
                return Err(PthErrorKind::UnknownStorageType(format!(
                    "{}.{}",
                    t[1].as_global().unwrap().0,
                    name
                )));
            }
        }
        Some((m, n)) => return Err(PthErrorKind::UnknownStorageType(format!("{m}.{n}"))),
        None => {
            return Err(PthErrorKind::UnknownStorageType(format!(
                "<{}>",
                t[1].kind()
            )))
        }
    };
    let key =
        value_to_key(&t[2]).ok_or_else(|| fmt_err(format!("storage key is a {}", t[2].kind())))?;
    let numel = to_u64(&t[4], "storage numel")?;
    let view = match t.get(5) {
        Some(Value::Tuple(vm)) if vm.len() == 3 => Some((
            to_u64(&vm[1], "storage view offset")?,
            to_u64(&vm[2], "storage view size")?,
        )),
        _ => None,
    };
    Ok(StorageRef {
        key,
        dtype,
        numel,
        view,
    })
}

/// If `callable(*args)` rebuilds a tensor, its spec.
fn parse_call(callable: &Value, args: &Value) -> KResult<Option<TensorSpec>> {
    let Some((module, name)) = callable.as_global() else {
        return Ok(None);
    };
    let args = args.as_seq().unwrap_or_default();
    let arg = |i: usize| {
        args.get(i)
            .ok_or_else(|| fmt_err(format!("{module}.{name}: missing argument {i}")))
    };
    match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let storage = match arg(0)? {
                Value::PersistentId(pid) => parse_storage(pid)?,
                other => return Err(fmt_err(format!("{name}: storage argument is a {}", other.kind()))),
            };
            let offset = to_u64(arg(1)?, "storage offset")?;
            let shape = to_u64_seq(arg(2)?, "size")?;
            let stride = to_u64_seq(arg(3)?, "stride")?;
            if shape.len() != stride.len() {
                return Err(fmt_err(format!("{name}: size has {} dims but stride has {}", shape.len(), stride.len())));
            }
            Ok(Some(TensorSpec { storage, offset, shape, stride }))
        }
        ("torch._utils", "_rebuild_parameter") | ("torch._utils", "_rebuild_parameter_with_state") => as_tensor(arg(0)?),
        ("torch._tensor", "_rebuild_from_type_v2") | ("torch._utils", "_rebuild_from_type") => parse_call(arg(0)?, arg(2)?),
        ("torch._utils", n) if n.starts_with("_rebuild_") => {
            Err(fmt_err(format!("unsupported tensor kind torch._utils.{n} (sparse/quantized/meta tensors are not supported)")))
        }
        _ => Ok(None),
    }
}

fn as_tensor(v: &Value) -> KResult<Option<TensorSpec>> {
    match v {
        Value::Object(o) => {
            let o = o.borrow();
            parse_call(&o.callable, &o.args)
        }
        _ => Ok(None),
    }
}

fn dict_items(v: &Value) -> Option<Vec<(Value, Value)>> {
    match v {
        Value::Dict(d) => Some(d.borrow().clone()),
        Value::Object(o) => {
            let o = o.borrow();
            (!o.dict_items.is_empty()).then(|| o.dict_items.clone())
        }
        _ => None,
    }
}

const MAX_DEPTH: usize = 32;

/// Collects tensors below `v`, naming them with dotted paths.
fn collect(
    prefix: &str,
    v: &Value,
    out: &mut Vec<(String, TensorSpec)>,
    depth: usize,
) -> KResult<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    let named = |e| match e {
        PthErrorKind::Format(msg) => PthErrorKind::BadTensor {
            name: prefix.to_string(),
            msg,
        },
        other => other,
    };
    if let Some(t) = as_tensor(v).map_err(named)? {
        out.push((prefix.to_string(), t));
    } else if let Some(items) = dict_items(v) {
        for (k, val) in &items {
            if let Some(k) = value_to_key(k) {
                collect(&join(&k), val, out, depth + 1)?;
            }
        }
    } else if let Some(seq) = v.as_seq() {
        for (i, val) in seq.iter().enumerate() {
            collect(&join(&i.to_string()), val, out, depth + 1)?;
        }
    }
    Ok(())
}

/// Keys under which checkpoints commonly keep the model's state dict, in order of preference.
const CHECKPOINT_KEYS: &[&str] = &[
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "network",
    "params",
    "params_ema",
    "ema",
    "module",
];

/// Finds the state dict in the unpickled top-level object; returns (name, spec) in file order,
/// later duplicates replacing earlier ones (Python dict semantics).
fn find_tensors(top: &Value, opts: &ReadOptions) -> KResult<Vec<(String, TensorSpec)>> {
    let mut out = Vec::new();
    let items = dict_items(top);
    if let Some(key) = &opts.key {
        let items = items.ok_or_else(|| {
            fmt_err(format!(
                "key '{key}' requested but the top-level object is a {}",
                top.kind()
            ))
        })?;
        let (_, v) = items
            .iter()
            .rev()
            .find(|(k, _)| value_to_key(k).as_deref() == Some(key))
            .ok_or_else(|| {
                let keys: Vec<String> = items.iter().filter_map(|(k, _)| value_to_key(k)).collect();
                fmt_err(format!("key '{key}' not found; top-level keys: {}", keys.join(", ")))
            })?;
        collect("", v, &mut out, 0)?;
    } else if let Some(items) = items {
        let direct = items
            .iter()
            .any(|(_, v)| matches!(as_tensor(v), Ok(Some(_))));
        if !direct {
            for ck in CHECKPOINT_KEYS {
                if let Some((_, v)) = items
                    .iter()
                    .rev()
                    .find(|(k, _)| value_to_key(k).as_deref() == Some(*ck))
                {
                    collect("", v, &mut out, 0)?;
                    if !out.is_empty() {
                        break;
                    }
                }
            }
        }
        if out.is_empty() {
            collect("", top, &mut out, 0)?;
        }
    } else {
        collect("", top, &mut out, 0)?;
    }
    // dedupe: last value wins, first position kept
    let mut index: HashMap<String, usize> = HashMap::with_capacity(out.len());
    let mut dedup: Vec<(String, TensorSpec)> = Vec::with_capacity(out.len());
    for (n, t) in out {
        if let Some(&i) = index.get(&n) {
            dedup[i].1 = t;
        } else {
            index.insert(n.clone(), dedup.len());
            dedup.push((n, t));
        }
    }
    Ok(dedup)
}

// ---------------------------------------------------------------------------
// materialisation

/// Copies a strided view of `storage` (bytes of the whole storage) into a contiguous buffer.
fn materialise(
    storage: &[u8],
    dtype: DType,
    offset: u64,
    shape: &[u64],
    stride: &[u64],
    swap: bool,
) -> Result<Vec<u8>, String> {
    let es = dtype.size();
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    if numel == 0 {
        return Ok(Vec::new());
    }
    let storage_numel = (storage.len() / es) as u64;
    let mut max = offset;
    for (&d, &s) in shape.iter().zip(stride) {
        max = (d - 1)
            .checked_mul(s)
            .and_then(|x| x.checked_add(max))
            .ok_or("strides overflow")?;
    }
    if max >= storage_numel {
        return Err(format!(
            "view (offset {offset}, size [{}], stride [{}]) reaches element {max} but the storage has {storage_numel} elements",
            join(shape),
            join(stride)
        ));
    }
    let numel = numel as usize;
    let nbytes = numel.checked_mul(es).ok_or("tensor too large")?;
    let offset = offset as usize;
    // row-major contiguity, ignoring size-1 dims
    let mut expect = 1u64;
    let mut contiguous = true;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expect {
            contiguous = false;
            break;
        }
        expect *= d;
    }
    let mut out = if contiguous {
        storage[offset * es..offset * es + nbytes].to_vec()
    } else {
        let mut out = Vec::with_capacity(nbytes);
        let nd = shape.len();
        let (inner_n, inner_s) = (shape[nd - 1] as usize, stride[nd - 1] as usize);
        let outer: Vec<usize> = shape[..nd - 1].iter().map(|&d| d as usize).collect();
        let ostride: Vec<usize> = stride[..nd - 1].iter().map(|&s| s as usize).collect();
        let mut idx = vec![0usize; nd - 1];
        let mut base = offset;
        loop {
            if inner_s == 1 {
                out.extend_from_slice(&storage[base * es..(base + inner_n) * es]);
            } else {
                match es {
                    1 => gather::<1>(storage, &mut out, base, inner_n, inner_s),
                    2 => gather::<2>(storage, &mut out, base, inner_n, inner_s),
                    4 => gather::<4>(storage, &mut out, base, inner_n, inner_s),
                    _ => gather::<8>(storage, &mut out, base, inner_n, inner_s),
                }
            }
            // increment the outer multi-index
            let mut k = nd - 1;
            loop {
                if k == 0 {
                    debug_assert_eq!(out.len(), nbytes);
                    if swap {
                        swap_bytes(&mut out, es);
                    }
                    return Ok(out);
                }
                k -= 1;
                idx[k] += 1;
                base += ostride[k];
                if idx[k] < outer[k] {
                    break;
                }
                base -= ostride[k] * outer[k];
                idx[k] = 0;
            }
        }
    };
    if swap {
        swap_bytes(&mut out, es);
    }
    Ok(out)
}

/// Appends `n` elements of `N` bytes read at element indices `base, base + stride, ...`
/// (bounds were checked by the caller).
fn gather<const N: usize>(src: &[u8], out: &mut Vec<u8>, base: usize, n: usize, stride: usize) {
    let start = out.len();
    out.resize(start + n * N, 0);
    let dst = &mut out[start..];
    let step = stride * N;
    // plain indexing with while loops: fast in release and tolerable in debug builds
    let (mut p, mut o) = (base * N, 0);
    while o < dst.len() {
        let mut b = 0;
        while b < N {
            dst[o + b] = src[p + b];
            b += 1;
        }
        p += step;
        o += N;
    }
}

fn swap_bytes(buf: &mut [u8], es: usize) {
    if es > 1 {
        buf.chunks_exact_mut(es).for_each(|c| c.reverse());
    }
}

/// Builds the state dict given a way to fetch each storage's raw bytes.
fn build(
    specs: Vec<(String, TensorSpec)>,
    swap: bool,
    file_len: usize,
    mut fetch: impl FnMut(&StorageRef) -> KResult<Rc<[u8]>>,
) -> KResult<StateDict> {
    let mut cache: HashMap<String, Rc<[u8]>> = HashMap::new();
    let mut tensors = Vec::with_capacity(specs.len());
    for (name, spec) in specs {
        let st = &spec.storage;
        let bytes = match cache.get(&st.key) {
            Some(b) => b.clone(),
            None => {
                let b = fetch(st)?;
                cache.insert(st.key.clone(), b.clone());
                b
            }
        };
        let es = st.dtype.size() as u64;
        let expected = st.numel.saturating_mul(es);
        if (bytes.len() as u64) < expected {
            return Err(PthErrorKind::TruncatedStorage {
                key: st.key.clone(),
                expected,
                found: bytes.len() as u64,
            });
        }
        let view: &[u8] = match st.view {
            None => &bytes,
            Some((off, size)) => {
                let r = off.saturating_mul(es)..off.saturating_add(size).saturating_mul(es);
                if r.end > bytes.len() as u64 {
                    return Err(PthErrorKind::BadTensor {
                        name,
                        msg: format!("storage view {off}+{size} exceeds storage '{}'", st.key),
                    });
                }
                &bytes[r.start as usize..r.end as usize]
            }
        };
        check_fits_file(&name, &spec, file_len)?;
        let data = materialise(view, st.dtype, spec.offset, &spec.shape, &spec.stride, swap)
            .map_err(|msg| PthErrorKind::BadTensor {
                name: name.clone(),
                msg,
            })?;
        let shape = spec.shape.iter().map(|&d| d as usize).collect();
        tensors.push((
            name,
            RawTensor {
                dtype: st.dtype,
                shape,
                data,
            },
        ));
    }
    Ok(StateDict { tensors })
}

/// A tensor whose strides repeat elements (stride 0) can declare any size over a one-element
/// storage; refuse one larger than the whole file before allocating it.
fn check_fits_file(name: &str, spec: &TensorSpec, file_len: usize) -> KResult<()> {
    let bytes = spec
        .shape
        .iter()
        .try_fold(spec.storage.dtype.size() as u64, |a, &d| a.checked_mul(d));
    match bytes {
        Some(b) if b <= file_len as u64 => Ok(()),
        _ => Err(PthErrorKind::BadTensor {
            name: name.to_string(),
            msg: format!(
                "shape {} needs more bytes than the whole file ({file_len}); the file is \
                 corrupt or crafted",
                spec.shape
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join("x")
            ),
        }),
    }
}

// ---------------------------------------------------------------------------
// zip format

fn read_zip(bytes: &[u8], opts: &ReadOptions) -> KResult<(StateDict, Value)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| PthErrorKind::Zip(format!("{e} (truncated or corrupt file?)")))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let pkl = names
        .iter()
        .filter(|n| n.as_str() == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.len())
        .cloned();
    let Some(pkl) = pkl else {
        let msg = if names
            .iter()
            .any(|n| n.ends_with("constants.pkl") || n.contains("/code/"))
        {
            "zip archive is a TorchScript module (torch.jit.save), not a torch.save file"
                .to_string()
        } else {
            format!(
                "zip archive has no <prefix>/data.pkl (entries: {})",
                names[..names.len().min(5)].join(", ")
            )
        };
        return Err(PthErrorKind::NotTorchFile(msg));
    };
    let prefix = pkl[..pkl.len() - "data.pkl".len()].to_string();
    let inflated = std::cell::Cell::new(0u64);
    let read_entry = |zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
                      name: &str|
     -> KResult<Option<Vec<u8>>> {
        let mut f = match zip.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(PthErrorKind::Zip(format!("{name}: {e}"))),
        };
        let stored = f.compression() == zip::CompressionMethod::Stored;
        let size = entry_size_bound(name, f.size(), f.compressed_size(), stored, bytes.len())?;
        if !stored {
            inflated.set(inflated.get().saturating_add(size));
            check_inflated(name, inflated.get(), bytes.len())?;
        }
        let mut buf = Vec::new();
        buf.try_reserve_exact(size as usize).map_err(|_| {
            PthErrorKind::Zip(format!("{name}: cannot allocate {size} bytes for it"))
        })?;
        (&mut f)
            .take(size)
            .read_to_end(&mut buf)
            .map_err(|e| PthErrorKind::Zip(format!("{name}: {e}")))?;
        if buf.len() as u64 != size {
            return Err(PthErrorKind::Zip(format!(
                "{name}: declares {size} bytes but holds {} (truncated or corrupt file?)",
                buf.len()
            )));
        }
        Ok(Some(buf))
    };
    let swap = match read_entry(&mut zip, &format!("{prefix}byteorder"))? {
        None => false,
        Some(b) => match std::str::from_utf8(&b).map(str::trim) {
            Ok("little") => cfg!(target_endian = "big"),
            Ok("big") => cfg!(target_endian = "little"),
            _ => {
                return Err(fmt_err(format!(
                    "unknown byteorder record '{}'",
                    String::from_utf8_lossy(&b)
                )))
            }
        },
    };
    let data = read_entry(&mut zip, &pkl)?.expect("listed entry");
    let (top, _, _) = load_state_pickle(&data, 0, &pkl)?;
    let specs = find_tensors(&top, opts)?;
    let sd = build(specs, swap, bytes.len(), |st| {
        let name = format!("{prefix}data/{}", st.key);
        match read_entry(&mut zip, &name)? {
            Some(b) => Ok(Rc::from(b)),
            None => Err(PthErrorKind::MissingStorage(name)),
        }
    })?;
    Ok((sd, top))
}

/// Deflate expands at most 1032:1, so no honest entry inflates to more than this many times
/// its compressed size.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// The size an entry declares, checked against what the file can hold before anything is
/// allocated: the compressed bytes must fit in the file, and the inflated size in what those
/// bytes can inflate to (a ~200-byte zip may declare a 2^62-byte entry).
fn entry_size_bound(
    name: &str,
    size: u64,
    compressed: u64,
    stored: bool,
    file_len: usize,
) -> KResult<u64> {
    let file_len = file_len as u64;
    let ratio = if stored { 1 } else { MAX_DEFLATE_RATIO };
    if compressed > file_len || size > compressed.saturating_mul(ratio) {
        return Err(PthErrorKind::Zip(format!(
            "{name}: declares {size} bytes ({compressed} compressed) in a file of {file_len} \
             bytes; the file is corrupt or crafted"
        )));
    }
    Ok(size)
}

/// Compressed entries may inflate, all together, to at most this many times the file's size
/// plus [`INFLATE_ALLOWANCE`]: tensor data hardly compresses (torch.save stores it
/// uncompressed), so only a decompression bomb needs more (a 7.3 MB file inflating to 7.5 GB
/// aborted the reader).
pub const MAX_INFLATE_RATIO: u64 = 16;
/// See [`MAX_INFLATE_RATIO`].
pub const INFLATE_ALLOWANCE: u64 = 64 << 20;

/// The compressed entries read so far inflate to `total` bytes: within the bound?
fn check_inflated(name: &str, total: u64, file_len: usize) -> KResult<()> {
    let limit = (file_len as u64).saturating_mul(MAX_INFLATE_RATIO).saturating_add(INFLATE_ALLOWANCE);
    if total > limit {
        return Err(PthErrorKind::Zip(format!(
            "{name}: the compressed entries inflate to {total} bytes, more than {MAX_INFLATE_RATIO} \
             times the file's {file_len} bytes plus {} MiB (a decompression bomb?)",
            INFLATE_ALLOWANCE >> 20
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// legacy format

/// Little-endian bytes of the legacy magic number 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC_LE: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL_VERSION: i64 = 1001;

fn read_legacy(bytes: &[u8], opts: &ReadOptions) -> KResult<(StateDict, Value)> {
    let pk = |what: &str| {
        let what = what.to_string();
        move |err| PthErrorKind::Pickle { what, err }
    };
    let magic_ok = |v: &Value| matches!(v, Value::BigInt(b) if b[..] == LEGACY_MAGIC_LE[..]);
    let (magic, pos) = match pickle::load(bytes, 0) {
        Ok((v, p)) if magic_ok(&v) => (v, p),
        _ => {
            return Err(PthErrorKind::NotTorchFile(format!(
                "neither a zip archive nor a pickle starting with the legacy torch magic number \
                 (first bytes {})",
                bytes[..bytes.len().min(12)].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
            )))
        }
    };
    drop(magic);
    let (proto, pos) = pickle::load(bytes, pos).map_err(pk("legacy protocol-version pickle"))?;
    if proto.as_int() != Some(LEGACY_PROTOCOL_VERSION) {
        return Err(fmt_err(format!(
            "unsupported legacy protocol version {} (expected 1001)",
            proto.as_int().map_or_else(|| format!("(a {})", proto.kind()), |v| v.to_string())
        )));
    }
    let (sys_info, pos) = pickle::load(bytes, pos).map_err(pk("legacy sys-info pickle"))?;
    let mut little = true;
    if let Some(items) = dict_items(&sys_info) {
        for (k, v) in items {
            if value_to_key(&k).as_deref() == Some("little_endian") {
                little = !matches!(v, Value::Bool(false));
            }
        }
    }
    let swap = little == cfg!(target_endian = "big");
    let (top, pos, pids) = load_state_pickle(bytes, pos, "legacy object pickle")?;
    let (keys, mut pos) = pickle::load(bytes, pos).map_err(pk("legacy storage-key list"))?;
    let keys = keys
        .as_seq()
        .ok_or_else(|| fmt_err(format!("legacy storage-key list is a {}", keys.kind())))?;

    // element size and count of every root storage, from its first persistent id
    let mut roots: HashMap<String, (DType, u64)> = HashMap::new();
    for pid in &pids {
        let st = parse_storage(pid)?;
        roots.entry(st.key).or_insert((st.dtype, st.numel));
    }
    let mut ranges: HashMap<String, Range<usize>> = HashMap::with_capacity(keys.len());
    for k in &keys {
        let key = value_to_key(k)
            .ok_or_else(|| fmt_err(format!("legacy storage key is a {}", k.kind())))?;
        let &(dtype, numel) = roots.get(&key).ok_or_else(|| {
            PthErrorKind::MissingStorage(format!("{key} (listed but never referenced)"))
        })?;
        let es = dtype.size() as u64;
        let remaining = (bytes.len() - pos) as u64;
        if remaining < 8 {
            return Err(PthErrorKind::TruncatedStorage {
                key,
                expected: 8 + numel * es,
                found: remaining,
            });
        }
        let hdr: [u8; 8] = bytes[pos..pos + 8].try_into().unwrap();
        let n = if little {
            i64::from_le_bytes(hdr)
        } else {
            i64::from_be_bytes(hdr)
        };
        if n < 0 || n as u64 != numel {
            return Err(fmt_err(format!(
                "storage '{key}': header says {n} elements, the pickle says {numel}"
            )));
        }
        let nbytes = numel.saturating_mul(es);
        if remaining - 8 < nbytes {
            return Err(PthErrorKind::TruncatedStorage {
                key,
                expected: nbytes,
                found: remaining - 8,
            });
        }
        let start = pos + 8;
        pos = start + nbytes as usize;
        ranges.insert(key, start..pos);
    }
    let specs = find_tensors(&top, opts)?;
    let sd = build(specs, swap, bytes.len(), |st| match ranges.get(&st.key) {
        Some(r) => Ok(Rc::from(&bytes[r.clone()])),
        None => Err(PthErrorKind::MissingStorage(st.key.clone())),
    })?;
    Ok((sd, top))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    fn bytes_f32(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn materialise_strided() {
        let st = bytes_f32(&(0..12).map(|x| x as f32).collect::<Vec<_>>());
        // 3x4 row-major, transposed view 4x3 with stride (1, 4)
        let t = materialise(&st, DType::F32, 0, &[4, 3], &[1, 4], false).unwrap();
        let v: Vec<f32> = t
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(v, [0., 4., 8., 1., 5., 9., 2., 6., 10., 3., 7., 11.]);
        // offset + contiguous
        let t = materialise(&st, DType::F32, 10, &[2], &[1], false).unwrap();
        assert_eq!(t, bytes_f32(&[10., 11.]));
        // 0-dim
        let t = materialise(&st, DType::F32, 5, &[], &[], false).unwrap();
        assert_eq!(t, bytes_f32(&[5.]));
        // out of bounds
        assert!(materialise(&st, DType::F32, 11, &[2], &[1], false).is_err());
        // empty
        assert!(materialise(&st, DType::F32, 0, &[0, 3], &[3, 1], false)
            .unwrap()
            .is_empty());
        // 3-D non-contiguous with a stepped last dim
        let t = materialise(&st, DType::F32, 1, &[2, 2, 2], &[6, 1, 2], false).unwrap();
        let v: Vec<f32> = t
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(v, [1., 3., 2., 4., 7., 9., 8., 10.]);
    }
}
