//! Minimal reader for MATLAB level-5 MAT-files (`save -v7` / `-v6`), enough for dataset
//! labels: numeric arrays (any numeric class, converted to `f64`), char arrays and cell
//! arrays of those, optionally zlib-compressed (`miCOMPRESSED`). Structs, objects, sparse
//! and complex arrays are reported as unsupported. v7.3 files (HDF5) are not MAT v5 files.
//!
//! (The `matfile` crate reads only numeric arrays, not cells or chars, hence this reader.)

use std::io::Read;
use std::path::Path;

use super::error::{io_err, DataError, Result};

/// A variable of a MAT-file.
#[derive(Debug, Clone, PartialEq)]
pub struct MatVar {
    pub name: String,
    pub value: MatValue,
}

/// An array value; `dims` as MATLAB gives them (at least 2), data in column-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum MatValue {
    /// Any real numeric or logical class, converted to `f64`.
    Numeric { dims: Vec<usize>, data: Vec<f64> },
    /// A char array; one string per row (a `1×n` array gives one string).
    Char { dims: Vec<usize>, rows: Vec<String> },
    /// A cell array, cells in column-major order.
    Cell {
        dims: Vec<usize>,
        cells: Vec<MatValue>,
    },
}

impl MatValue {
    /// The numbers of a numeric array.
    pub fn as_f64s(&self) -> Option<&[f64]> {
        match self {
            MatValue::Numeric { data, .. } => Some(data),
            _ => None,
        }
    }

    /// The strings of a cell array of (single-row) char arrays, or the rows of a char array.
    pub fn as_strings(&self) -> Option<Vec<String>> {
        match self {
            MatValue::Char { rows, .. } => Some(rows.clone()),
            MatValue::Cell { cells, .. } => cells
                .iter()
                .map(|c| match c {
                    MatValue::Char { rows, .. } if rows.len() <= 1 => {
                        Some(rows.first().cloned().unwrap_or_default())
                    }
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
}

/// Reads every variable of a MAT-file; errors name the file.
pub fn read(path: impl AsRef<Path>) -> Result<Vec<MatVar>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    parse(&bytes).map_err(|msg| DataError::Mat {
        path: path.to_path_buf(),
        msg,
    })
}

/// Reads the variable `name` of a MAT-file, or its only / first variable when `name` is absent.
pub fn read_var(path: impl AsRef<Path>, name: &str) -> Result<MatValue> {
    let path = path.as_ref();
    let mut vars = read(path)?;
    if vars.is_empty() {
        return Err(DataError::Mat {
            path: path.to_path_buf(),
            msg: "no variables".into(),
        });
    }
    let i = vars.iter().position(|v| v.name == name).unwrap_or(0);
    Ok(vars.swap_remove(i).value)
}

/// Parses a MAT v5 file held in memory.
pub fn parse(bytes: &[u8]) -> std::result::Result<Vec<MatVar>, String> {
    if bytes.len() < 128 {
        return Err("too short for a MAT-file header".into());
    }
    if bytes.starts_with(b"\x89HDF") || bytes[..116].windows(10).any(|w| w == b"MATLAB 7.3") {
        return Err("MATLAB v7.3 (HDF5) files are not supported; save with -v7".into());
    }
    let be = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        _ => return Err("not a MATLAB level-5 MAT-file (no endian indicator)".into()),
    };
    let mut vars = Vec::new();
    let mut r = Reader {
        buf: &bytes[128..],
        pos: 0,
        be,
    };
    while r.pos + 8 <= r.buf.len() {
        let (ty, data) = r.element()?;
        if let Some(v) = top_element(ty, data, be)? {
            vars.push(v);
        }
    }
    Ok(vars)
}

const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

fn top_element(ty: u32, data: &[u8], be: bool) -> std::result::Result<Option<MatVar>, String> {
    match ty {
        MI_COMPRESSED => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad compressed element: {e}"))?;
            let mut r = Reader {
                buf: &out,
                pos: 0,
                be,
            };
            let (ty, inner) = r.element()?;
            top_element(ty, inner, be)
        }
        MI_MATRIX => {
            let (name, value) = matrix(data, be)?;
            Ok(Some(MatVar { name, value }))
        }
        _ => Ok(None), // e.g. subsystem data; not a variable
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    be: bool,
}

impl<'a> Reader<'a> {
    fn u32_at(&self, at: usize) -> std::result::Result<u32, String> {
        let b: [u8; 4] = self
            .buf
            .get(at..at + 4)
            .ok_or("truncated data element tag")?
            .try_into()
            .unwrap();
        Ok(if self.be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// Next data element: (type, data). Handles the small-element format and 8-byte padding.
    fn element(&mut self) -> std::result::Result<(u32, &'a [u8]), String> {
        let first = self.u32_at(self.pos)?;
        if first >> 16 != 0 {
            // Small data element: 2-byte size, 2-byte type, up to 4 bytes of data.
            let (ty, n) = (first & 0xffff, (first >> 16) as usize);
            if n > 4 {
                return Err(format!("bad small data element size {n}"));
            }
            let data = &self.buf[self.pos + 4..self.pos + 4 + n];
            self.pos += 8;
            return Ok((ty, data));
        }
        let n = self.u32_at(self.pos + 4)? as usize;
        let start = self.pos + 8;
        let data = self
            .buf
            .get(start..start + n)
            .ok_or_else(|| format!("data element of type {first} ({n} bytes) runs past the end"))?;
        // Compressed elements are not padded; everything else is padded to 8 bytes.
        let padded = if first == MI_COMPRESSED {
            n
        } else {
            n.div_ceil(8) * 8
        };
        self.pos = (start + padded).min(self.buf.len());
        Ok((first, data))
    }
}

/// Parses the body of an miMATRIX element: (name, value).
fn matrix(data: &[u8], be: bool) -> std::result::Result<(String, MatValue), String> {
    if data.is_empty() {
        // An empty miMATRIX (e.g. an empty cell): a 0x0 double.
        return Ok((
            String::new(),
            MatValue::Numeric {
                dims: vec![0, 0],
                data: vec![],
            },
        ));
    }
    let mut r = Reader {
        buf: data,
        pos: 0,
        be,
    };
    let (ty, flags) = r.element()?;
    if ty != MI_UINT32 || flags.len() < 8 {
        return Err("array flags missing".into());
    }
    let f0 = r_u32(&flags[..4], be);
    let class = f0 & 0xff;
    let complex = f0 & 0x800 != 0;
    let (_, dims_raw) = r.element()?;
    let dims: Vec<usize> = dims_raw
        .chunks_exact(4)
        .map(|c| r_u32(c, be) as usize)
        .collect();
    let count: usize = dims.iter().product();
    let (_, name_raw) = r.element()?;
    let name = String::from_utf8_lossy(name_raw).into_owned();
    let value = match class {
        1 => {
            let mut cells = Vec::with_capacity(count);
            for _ in 0..count {
                let (ty, cell) = r.element()?;
                if ty != MI_MATRIX {
                    return Err(format!("cell of type {ty} is not an array"));
                }
                cells.push(matrix(cell, be)?.1);
            }
            MatValue::Cell { dims, cells }
        }
        4 => {
            let chars = if count == 0 {
                vec![]
            } else {
                let (ty, raw) = r.element()?;
                chars(ty, raw, be)?
            };
            if chars.len() != count {
                return Err(format!(
                    "char array `{name}`: {} chars for dims {}",
                    chars.len(),
                    dims_text(&dims)
                ));
            }
            let nrows = dims.first().copied().unwrap_or(0);
            let ncols = count.checked_div(nrows).unwrap_or(0);
            let rows = (0..nrows)
                .map(|i| (0..ncols).map(|j| chars[i + j * nrows]).collect())
                .collect();
            MatValue::Char { dims, rows }
        }
        6..=15 => {
            if complex {
                return Err(format!("complex array `{name}` is not supported"));
            }
            let data = if count == 0 {
                vec![]
            } else {
                let (ty, raw) = r.element()?;
                numbers(ty, raw, be)?
            };
            if data.len() != count {
                return Err(format!(
                    "array `{name}`: {} values for dims {}",
                    data.len(),
                    dims_text(&dims)
                ));
            }
            MatValue::Numeric { dims, data }
        }
        2 => return Err(format!("struct `{name}` is not supported")),
        3 => return Err(format!("object `{name}` is not supported")),
        5 => return Err(format!("sparse array `{name}` is not supported")),
        c => return Err(format!("array `{name}` has unknown class {c}")),
    };
    Ok((name, value))
}

fn r_u32(b: &[u8], be: bool) -> u32 {
    let a: [u8; 4] = b[..4].try_into().unwrap();
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn numbers(ty: u32, raw: &[u8], be: bool) -> std::result::Result<Vec<f64>, String> {
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().unwrap();
                    (if be {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }) as f64
                })
                .collect()
        };
    }
    Ok(match ty {
        MI_INT8 => raw.iter().map(|&b| b as i8 as f64).collect(),
        MI_UINT8 => raw.iter().map(|&b| b as f64).collect(),
        MI_INT16 => conv!(i16, 2),
        MI_UINT16 => conv!(u16, 2),
        MI_INT32 => conv!(i32, 4),
        MI_UINT32 => conv!(u32, 4),
        MI_SINGLE => conv!(f32, 4),
        MI_DOUBLE => conv!(f64, 8),
        MI_INT64 => conv!(i64, 8),
        MI_UINT64 => conv!(u64, 8),
        t => return Err(format!("numeric data of unsupported type {t}")),
    })
}

fn chars(ty: u32, raw: &[u8], be: bool) -> std::result::Result<Vec<char>, String> {
    let bad = || "invalid character data".to_string();
    Ok(match ty {
        MI_UTF8 => std::str::from_utf8(raw)
            .map_err(|_| bad())?
            .chars()
            .collect(),
        MI_INT8 | MI_UINT8 => raw.iter().map(|&b| b as char).collect(),
        MI_UINT16 | MI_INT16 | MI_UTF16 => {
            let units: Vec<u16> = raw
                .chunks_exact(2)
                .map(|c| {
                    if be {
                        u16::from_be_bytes([c[0], c[1]])
                    } else {
                        u16::from_le_bytes([c[0], c[1]])
                    }
                })
                .collect();
            // MATLAB stores one UTF-16 code unit per char; lone surrogates become U+FFFD.
            char::decode_utf16(units)
                .map(|c| c.unwrap_or('\u{fffd}'))
                .collect()
        }
        MI_UTF32 | MI_UINT32 | MI_INT32 => raw
            .chunks_exact(4)
            .map(|c| char::from_u32(r_u32(c, be)).unwrap_or('\u{fffd}'))
            .collect(),
        t => return Err(format!("character data of unsupported type {t}")),
    })
}

/// `3x4`: an array's dimensions, for messages.
fn dims_text(dims: &[usize]) -> String {
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
}
