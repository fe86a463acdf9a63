//! A small, generic pickle virtual machine (protocols 0–5 minus the rarely used
//! object-instantiation opcodes), sufficient for the pickles `torch.save` writes.
//!
//! The VM never executes anything: `GLOBAL` yields a [`Value::Global`], `REDUCE`/`NEWOBJ`
//! yield a [`Value::Object`] recording the callable and its arguments, and `BINPERSID`
//! yields a [`Value::PersistentId`]. Interpreting those (tensor rebuild functions, storages)
//! is left to the caller ([`super::pth`]).
//!
//! Lists, dicts and objects are reference-counted and mutable, so memo sharing follows
//! Python semantics (a container fetched from the memo sees later `SETITEMS`/`APPENDS`).
//! The only exception, `collections.OrderedDict()` (a `REDUCE` with no arguments), is turned
//! into a plain [`Value::Dict`] directly.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// A decoded pickle value.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit into `i64` (little-endian two's complement bytes).
    BigInt(Vec<u8>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    List(Rc<RefCell<Vec<Value>>>),
    /// Key/value pairs in insertion order; a repeated key is appended again (later wins).
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Set(Rc<RefCell<Vec<Value>>>),
    /// A reference to `module.name` (from `GLOBAL`/`STACK_GLOBAL`).
    Global {
        module: Rc<str>,
        name: Rc<str>,
    },
    /// The result of `REDUCE` (callable(*args)) or `NEWOBJ` (cls.__new__(cls, *args)).
    Object(Rc<RefCell<Object>>),
    /// The argument of a persistent-id opcode (`PERSID`/`BINPERSID`), not resolved.
    PersistentId(Rc<Value>),
    /// The `MARK` sentinel; never part of a finished value.
    Mark,
}

/// An unexecuted call recorded by the VM.
#[derive(Debug, Clone)]
pub struct Object {
    /// The callable (`REDUCE`) or class (`NEWOBJ`); usually a [`Value::Global`].
    pub callable: Value,
    /// The arguments: a tuple (or, for `NEWOBJ_EX`, a tuple of (args, kwargs)).
    pub args: Value,
    /// State from `BUILD`, if any.
    pub state: Option<Value>,
    /// Items added by `APPEND(S)` on this object.
    pub list_items: Vec<Value>,
    /// Items added by `SETITEM(S)` on this object.
    pub dict_items: Vec<(Value, Value)>,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    /// A Python `int` or `float` as `f64` (`bool` is not a number here).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
    /// The value under a string key of a dict (the last one, as Python keeps it), or of an
    /// object built with `SETITEMS` (e.g. an `OrderedDict`).
    pub fn get(&self, key: &str) -> Option<Value> {
        let find = |items: &[(Value, Value)]| {
            items
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v.clone())
        };
        match self {
            Value::Dict(d) => find(&d.borrow()),
            Value::Object(o) => find(&o.borrow().dict_items),
            _ => None,
        }
    }
    /// Elements of a tuple or list (cloned, shallow for containers).
    pub fn as_seq(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.to_vec()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }
    /// `Some((module, name))` for a [`Value::Global`].
    pub fn as_global(&self) -> Option<(&str, &str)> {
        match self {
            Value::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }
    /// Short description of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::Global { .. } => "global",
            Value::Object(_) => "object",
            Value::PersistentId(_) => "persistent id",
            Value::Mark => "mark",
        }
    }
}

/// Errors from the pickle VM. Offsets are byte offsets into the buffer given to [`load`].
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    #[error(
        "unknown or unsupported pickle opcode 0x{op:02x} ('{}') at byte offset {offset}",
        .op_char.escape_default()
    )]
    UnknownOpcode {
        op: u8,
        op_char: char,
        offset: usize,
    },
    #[error("pickle data truncated at byte offset {offset} (opcode 0x{op:02x} needs {needed} more bytes)")]
    Truncated {
        op: u8,
        offset: usize,
        needed: usize,
    },
    #[error("pickle data ended at byte offset {offset} without a STOP opcode")]
    NoStop { offset: usize },
    #[error("pickle stack underflow for opcode 0x{op:02x} at byte offset {offset}")]
    StackUnderflow { op: u8, offset: usize },
    #[error("no MARK on the pickle stack for opcode 0x{op:02x} at byte offset {offset}")]
    NoMark { op: u8, offset: usize },
    #[error("pickle memo key {key} not found (opcode at byte offset {offset})")]
    MemoMissing { key: u32, offset: usize },
    #[error("invalid pickle at byte offset {offset}: {msg}")]
    Invalid { offset: usize, msg: String },
    #[error(
        "pickle nests containers more than {limit} levels deep; a state dict nests a few \
         levels, so the file is corrupt or crafted"
    )]
    TooDeep { limit: usize },
    #[error("pickle holds a container that contains itself; a state dict has no such cycles, so the file is corrupt or crafted")]
    Cycle,
    /// A `GLOBAL`/`STACK_GLOBAL` naming something the caller's policy does not allow.
    #[error("the pickle names {module}.{name} (byte offset {offset}), which is not allowed here")]
    RefusedGlobal {
        module: String,
        name: String,
        offset: usize,
    },
}

/// The deepest nesting of containers (tuples, lists, dicts, sets, objects, persistent ids) a
/// pickle may have: state dicts nest a handful of levels; a crafted pickle nested 200,000
/// levels deep would overflow the stack when the value is dropped, printed or walked.
pub const MAX_NESTING: usize = 1000;

/// Runs the pickle program starting at `data[start..]` until `STOP`.
/// Returns the unpickled value and the offset just past the `STOP` opcode
/// (so that several concatenated pickles can be read one after the other).
pub fn load(data: &[u8], start: usize) -> Result<(Value, usize), PickleError> {
    load_with_persistent_ids(data, start).map(|(v, end, _)| (v, end))
}

/// Like [`load`], and also returns every persistent id met, in order of appearance
/// (including ones inside parts of the object that the caller may not look at).
pub fn load_with_persistent_ids(
    data: &[u8],
    start: usize,
) -> Result<(Value, usize, Vec<Rc<Value>>), PickleError> {
    load_restricted(data, start, |_, _| true)
}

/// Like [`load_with_persistent_ids`], but a `GLOBAL`/`STACK_GLOBAL` for which `allow(module,
/// name)` is false stops the VM with [`PickleError::RefusedGlobal`] (as Python's
/// `Unpickler.find_class` override that `torch.load(weights_only=True)` uses).
pub fn load_restricted(
    data: &[u8],
    start: usize,
    allow: fn(&str, &str) -> bool,
) -> Result<(Value, usize, Vec<Rc<Value>>), PickleError> {
    let mut vm = Vm {
        data,
        pos: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        pids: Vec::new(),
        scratch: Vec::new(),
        allow,
    };
    let v = vm.run()?;
    let pids = std::mem::take(&mut vm.pids);
    let checked = std::iter::once(&v)
        .chain(pids.iter().map(|p| &**p))
        .try_for_each(|x| nesting_depth(x, MAX_NESTING).map(drop));
    match checked {
        Ok(()) => Ok((v, vm.pos, pids)),
        Err(e) => {
            dismantle(v);
            pids.into_iter()
                .for_each(|p| dismantle(Value::PersistentId(p)));
            Err(e)
        }
    }
}

/// The containers directly inside `v` (shallow clones).
fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Tuple(t) => t.to_vec(),
        Value::List(l) | Value::Set(l) => l.borrow().clone(),
        Value::Dict(d) => d
            .borrow()
            .iter()
            .flat_map(|(k, v)| [k.clone(), v.clone()])
            .collect(),
        Value::Object(o) => {
            let o = o.borrow();
            let mut c = vec![o.callable.clone(), o.args.clone()];
            c.extend(o.state.clone());
            c.extend(o.list_items.iter().cloned());
            c.extend(
                o.dict_items
                    .iter()
                    .flat_map(|(k, v)| [k.clone(), v.clone()]),
            );
            c
        }
        Value::PersistentId(p) => vec![(**p).clone()],
        _ => Vec::new(),
    }
}

/// Identity of a shared container (its allocation), `None` for plain values.
fn identity(v: &Value) -> Option<usize> {
    Some(match v {
        Value::Tuple(t) => Rc::as_ptr(t) as *const u8 as usize,
        Value::List(l) | Value::Set(l) => Rc::as_ptr(l) as usize,
        Value::Dict(d) => Rc::as_ptr(d) as usize,
        Value::Object(o) => Rc::as_ptr(o) as usize,
        Value::PersistentId(p) => Rc::as_ptr(p) as usize,
        _ => return None,
    })
}

/// How many containers deep `v` nests (0 for a plain value), computed without recursion;
/// [`PickleError::TooDeep`] beyond `limit`, [`PickleError::Cycle`] for a self-containing value.
pub fn nesting_depth(v: &Value, limit: usize) -> Result<usize, PickleError> {
    enum Seen {
        OnPath,
        Done(usize),
    }
    struct Frame {
        id: Option<usize>,
        children: std::vec::IntoIter<Value>,
        deepest: usize,
    }
    let mut seen: HashMap<usize, Seen> = HashMap::new();
    let open = |v: &Value| Frame {
        id: identity(v),
        children: children(v).into_iter(),
        deepest: 0,
    };
    if let Some(id) = identity(v) {
        seen.insert(id, Seen::OnPath);
    }
    let mut path = vec![open(v)];
    loop {
        let top = path.last_mut().expect("path is never empty here");
        if let Some(child) = top.children.next() {
            let id = identity(&child);
            match id.and_then(|i| seen.get(&i)) {
                Some(Seen::OnPath) => return Err(PickleError::Cycle),
                Some(&Seen::Done(d)) => top.deepest = top.deepest.max(d),
                None if id.is_none() => {}
                None => {
                    if path.len() >= limit {
                        return Err(PickleError::TooDeep { limit });
                    }
                    seen.insert(id.unwrap(), Seen::OnPath);
                    path.push(open(&child));
                }
            }
            continue;
        }
        let done = path.pop().expect("path is never empty here");
        let depth = done.deepest + usize::from(done.id.is_some());
        if let Some(id) = done.id {
            seen.insert(id, Seen::Done(depth));
        }
        match path.last_mut() {
            Some(parent) => parent.deepest = parent.deepest.max(depth),
            None => return Ok(depth),
        }
    }
}

/// Drops `v` without recursion: containers owned only here are emptied onto a work list first,
/// so a value nested arbitrarily deep cannot overflow the stack.
pub fn dismantle(v: Value) {
    let mut work = vec![v];
    while let Some(v) = work.pop() {
        match v {
            Value::Tuple(mut t) => {
                if let Some(items) = Rc::get_mut(&mut t) {
                    work.extend(items.iter_mut().map(|x| std::mem::replace(x, Value::None)));
                }
            }
            Value::List(mut l) | Value::Set(mut l) => {
                if let Some(items) = Rc::get_mut(&mut l) {
                    work.append(items.get_mut());
                }
            }
            Value::Dict(mut d) => {
                if let Some(items) = Rc::get_mut(&mut d) {
                    work.extend(items.get_mut().drain(..).flat_map(|(k, v)| [k, v]));
                }
            }
            Value::Object(mut o) => {
                if let Some(o) = Rc::get_mut(&mut o) {
                    let o = o.get_mut();
                    work.push(std::mem::replace(&mut o.callable, Value::None));
                    work.push(std::mem::replace(&mut o.args, Value::None));
                    work.extend(o.state.take());
                    work.append(&mut o.list_items);
                    work.extend(o.dict_items.drain(..).flat_map(|(k, v)| [k, v]));
                }
            }
            Value::PersistentId(mut p) => {
                if let Some(inner) = Rc::get_mut(&mut p) {
                    work.push(std::mem::replace(inner, Value::None));
                }
            }
            _ => {}
        }
    }
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    pids: Vec<Rc<Value>>,
    /// A second handle on every value the current opcode took off the stack or the memo, so
    /// that whatever the opcode discards (or drops on an error) is dropped by [`dismantle`]
    /// when the next opcode starts, never recursively.
    scratch: Vec<Value>,
    /// Which `GLOBAL`/`STACK_GLOBAL` names the VM may load (see [`load_restricted`]).
    allow: fn(&str, &str) -> bool,
}

impl Drop for Vm<'_> {
    /// Whatever the program left on the stack or in the memo may be nested arbitrarily deep.
    fn drop(&mut self) {
        self.scratch.drain(..).for_each(dismantle);
        self.stack.drain(..).for_each(dismantle);
        self.memo.drain().for_each(|(_, v)| dismantle(v));
        self.pids
            .drain(..)
            .for_each(|p| dismantle(Value::PersistentId(p)));
    }
}

fn rc_str(s: &str) -> Rc<str> {
    Rc::from(s)
}

impl<'a> Vm<'a> {
    fn check_global(&self, module: &str, name: &str, offset: usize) -> Result<(), PickleError> {
        if (self.allow)(module, name) {
            Ok(())
        } else {
            Err(PickleError::RefusedGlobal {
                module: module.to_string(),
                name: name.to_string(),
                offset,
            })
        }
    }

    fn take(&mut self, op: u8, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(PickleError::Truncated {
                op,
                offset: self.pos,
                needed: n,
            }),
        }
    }
    fn u8(&mut self, op: u8) -> Result<u8, PickleError> {
        Ok(self.take(op, 1)?[0])
    }
    fn u16(&mut self, op: u8) -> Result<u16, PickleError> {
        let b = self.take(op, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, op: u8) -> Result<u32, PickleError> {
        let b = self.take(op, 4)?;
        Ok(u32::from_le_bytes(b.try_into().unwrap()))
    }
    fn u64(&mut self, op: u8) -> Result<u64, PickleError> {
        let b = self.take(op, 8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    }
    /// Reads a text line (protocol 0 argument) without the trailing '\n'.
    fn line(&mut self, op: u8) -> Result<&'a [u8], PickleError> {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None => Err(PickleError::Truncated {
                op,
                offset: self.pos,
                needed: 1,
            }),
        }
    }
    fn invalid(&self, offset: usize, msg: impl Into<String>) -> PickleError {
        PickleError::Invalid {
            offset,
            msg: msg.into(),
        }
    }
    fn pop(&mut self, op: u8, offset: usize) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(PickleError::StackUnderflow { op, offset });
        }
        let v = self.stack.pop().unwrap();
        self.scratch.push(v.clone());
        Ok(v)
    }
    fn top(&mut self, op: u8, offset: usize) -> Result<&mut Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(PickleError::StackUnderflow { op, offset });
        }
        Ok(self.stack.last_mut().unwrap())
    }
    fn pop_mark(&mut self, op: u8, offset: usize) -> Result<Vec<Value>, PickleError> {
        let m = self.marks.pop().ok_or(PickleError::NoMark { op, offset })?;
        let items = self.stack.split_off(m);
        self.scratch.extend(items.iter().cloned());
        Ok(items)
    }
    fn memo_get(&self, key: u32, offset: usize) -> Result<Value, PickleError> {
        self.memo
            .get(&key)
            .cloned()
            .ok_or(PickleError::MemoMissing { key, offset })
    }
    fn memo_put(&mut self, key: u32, op: u8, offset: usize) -> Result<(), PickleError> {
        let v = self.top(op, offset)?.clone();
        if let Some(old) = self.memo.insert(key, v) {
            self.scratch.push(old);
        }
        Ok(())
    }
    fn utf8(&self, b: &[u8], offset: usize) -> Result<Value, PickleError> {
        std::str::from_utf8(b)
            .map(|s| Value::Str(rc_str(s)))
            .map_err(|e| self.invalid(offset, format!("invalid UTF-8 in string: {e}")))
    }
    /// Python 2 `str` (BINSTRING etc.): torch loads these with encoding='utf-8'; fall back to bytes.
    fn py2_str(b: &[u8]) -> Value {
        match std::str::from_utf8(b) {
            Ok(s) => Value::Str(rc_str(s)),
            Err(_) => Value::Bytes(Rc::from(b)),
        }
    }
    fn long_from_le(b: &[u8]) -> Value {
        if b.is_empty() {
            return Value::Int(0);
        }
        if b.len() <= 8 {
            let neg = b[b.len() - 1] & 0x80 != 0;
            let mut buf = [if neg { 0xff } else { 0 }; 8];
            buf[..b.len()].copy_from_slice(b);
            Value::Int(i64::from_le_bytes(buf))
        } else {
            Value::BigInt(b.to_vec())
        }
    }

    fn set_items(
        &mut self,
        target: &Value,
        items: Vec<(Value, Value)>,
        op: u8,
        offset: usize,
    ) -> Result<(), PickleError> {
        match target {
            Value::Dict(d) => d.borrow_mut().extend(items),
            Value::Object(o) => o.borrow_mut().dict_items.extend(items),
            other => {
                return Err(self.invalid(
                    offset,
                    format!("opcode 0x{op:02x}: cannot set items on a {}", other.kind()),
                ))
            }
        }
        Ok(())
    }
    fn append_items(
        &mut self,
        target: &Value,
        items: Vec<Value>,
        op: u8,
        offset: usize,
    ) -> Result<(), PickleError> {
        match target {
            Value::List(l) => l.borrow_mut().extend(items),
            Value::Set(s) => s.borrow_mut().extend(items),
            Value::Object(o) => o.borrow_mut().list_items.extend(items),
            other => {
                return Err(self.invalid(
                    offset,
                    format!("opcode 0x{op:02x}: cannot append to a {}", other.kind()),
                ))
            }
        }
        Ok(())
    }

    fn reduce(callable: Value, args: Value) -> Value {
        // OrderedDict() → plain dict, so SETITEMS / BUILD just work.
        if let (Some(("collections", "OrderedDict")), Value::Tuple(t)) =
            (callable.as_global(), &args)
        {
            if t.is_empty() {
                return Value::Dict(Rc::new(RefCell::new(Vec::new())));
            }
        }
        Value::Object(Rc::new(RefCell::new(Object {
            callable,
            args,
            state: None,
            list_items: Vec::new(),
            dict_items: Vec::new(),
        })))
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.scratch.drain(..).for_each(dismantle);
            let offset = self.pos;
            if self.pos >= self.data.len() {
                return Err(PickleError::NoStop { offset });
            }
            let op = self.data[self.pos];
            self.pos += 1;
            match op {
                // ---- control
                0x80 => {
                    // PROTO
                    let p = self.u8(op)?;
                    if p > 5 {
                        return Err(
                            self.invalid(offset, format!("unsupported pickle protocol {p}"))
                        );
                    }
                }
                0x95 => {
                    // FRAME (protocol 4): just a length hint
                    self.u64(op)?;
                }
                b'.' => {
                    // STOP
                    let v = self.pop(op, offset)?;
                    return Ok(v);
                }
                b'(' => {
                    // MARK
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    // POP
                    if self.marks.last() == Some(&self.stack.len()) {
                        // popping a mark (Python allows POP of the MARK object)
                        self.marks.pop();
                    } else {
                        self.pop(op, offset)?;
                    }
                }
                b'1' => {
                    // POP_MARK
                    self.pop_mark(op, offset)?;
                }
                b'2' => {
                    // DUP
                    let v = self.top(op, offset)?.clone();
                    self.stack.push(v);
                }
                // ---- constants
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                // ---- integers
                b'J' => {
                    let b = self.take(op, 4)?;
                    self.stack
                        .push(Value::Int(i32::from_le_bytes(b.try_into().unwrap()) as i64));
                }
                b'K' => {
                    let v = self.u8(op)?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16(op)?;
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    // LONG1
                    let n = self.u8(op)? as usize;
                    let b = self.take(op, n)?;
                    self.stack.push(Self::long_from_le(b));
                }
                0x8b => {
                    // LONG4
                    let n = self.u32(op)? as usize;
                    let b = self.take(op, n)?;
                    self.stack.push(Self::long_from_le(b));
                }
                b'I' | b'L' => {
                    // INT / LONG (text)
                    let line = self.line(op)?;
                    let s = std::str::from_utf8(line)
                        .unwrap_or("")
                        .trim_end_matches('L');
                    let v = match s {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(s.parse::<i64>().map_err(|_| {
                            self.invalid(offset, format!("bad integer literal '{s}'"))
                        })?),
                    };
                    self.stack.push(v);
                }
                // ---- floats
                b'G' => {
                    let b = self.take(op, 8)?;
                    self.stack
                        .push(Value::Float(f64::from_be_bytes(b.try_into().unwrap())));
                }
                b'F' => {
                    let line = self.line(op)?;
                    let s = std::str::from_utf8(line).unwrap_or("");
                    let v = s
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| self.invalid(offset, format!("bad float literal '{s}'")))?;
                    self.stack.push(Value::Float(v));
                }
                // ---- strings / bytes
                b'X' => {
                    let n = self.u32(op)? as usize;
                    let b = self.take(op, n)?;
                    let v = self.utf8(b, offset)?;
                    self.stack.push(v);
                }
                0x8c => {
                    // SHORT_BINUNICODE
                    let n = self.u8(op)? as usize;
                    let b = self.take(op, n)?;
                    let v = self.utf8(b, offset)?;
                    self.stack.push(v);
                }
                0x8d => {
                    // BINUNICODE8
                    let n = usize::try_from(self.u64(op)?).unwrap_or(usize::MAX);
                    let b = self.take(op, n)?;
                    let v = self.utf8(b, offset)?;
                    self.stack.push(v);
                }
                b'T' => {
                    // BINSTRING
                    let n = self.u32(op)? as usize;
                    let b = self.take(op, n)?;
                    self.stack.push(Self::py2_str(b));
                }
                b'U' => {
                    // SHORT_BINSTRING
                    let n = self.u8(op)? as usize;
                    let b = self.take(op, n)?;
                    self.stack.push(Self::py2_str(b));
                }
                b'B' => {
                    // BINBYTES
                    let n = self.u32(op)? as usize;
                    let b = self.take(op, n)?;
                    self.stack.push(Value::Bytes(Rc::from(b)));
                }
                b'C' => {
                    // SHORT_BINBYTES
                    let n = self.u8(op)? as usize;
                    let b = self.take(op, n)?;
                    self.stack.push(Value::Bytes(Rc::from(b)));
                }
                0x8e | 0x96 => {
                    // BINBYTES8 / BYTEARRAY8
                    let n = usize::try_from(self.u64(op)?).unwrap_or(usize::MAX);
                    let b = self.take(op, n)?;
                    self.stack.push(Value::Bytes(Rc::from(b)));
                }
                b'V' => {
                    // UNICODE (raw-unicode-escape, text); good enough for ASCII
                    let line = self.line(op)?;
                    let v = self.utf8(line, offset)?;
                    self.stack.push(v);
                }
                b'S' => {
                    // STRING (quoted repr)
                    let line = self.line(op)?;
                    let s = std::str::from_utf8(line).unwrap_or("").trim();
                    let inner = if s.len() >= 2
                        && (s.starts_with('\'') && s.ends_with('\'')
                            || s.starts_with('"') && s.ends_with('"'))
                    {
                        &s[1..s.len() - 1]
                    } else {
                        return Err(self.invalid(offset, "STRING argument is not quoted"));
                    };
                    self.stack.push(Value::Str(rc_str(inner)));
                }
                // ---- containers
                b'}' => self
                    .stack
                    .push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
                b']' => self
                    .stack
                    .push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b')' => self.stack.push(Value::Tuple(Rc::from(Vec::new()))),
                0x8f => self
                    .stack
                    .push(Value::Set(Rc::new(RefCell::new(Vec::new())))),
                0x85 => {
                    let a = self.pop(op, offset)?;
                    self.stack.push(Value::Tuple(Rc::from(vec![a])));
                }
                0x86 => {
                    let b = self.pop(op, offset)?;
                    let a = self.pop(op, offset)?;
                    self.stack.push(Value::Tuple(Rc::from(vec![a, b])));
                }
                0x87 => {
                    let c = self.pop(op, offset)?;
                    let b = self.pop(op, offset)?;
                    let a = self.pop(op, offset)?;
                    self.stack.push(Value::Tuple(Rc::from(vec![a, b, c])));
                }
                b't' => {
                    let items = self.pop_mark(op, offset)?;
                    self.stack.push(Value::Tuple(Rc::from(items)));
                }
                b'l' => {
                    let items = self.pop_mark(op, offset)?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'd' => {
                    let items = self.pop_mark(op, offset)?;
                    if items.len() % 2 != 0 {
                        return Err(self.invalid(offset, "DICT with an odd number of items"));
                    }
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    self.stack.push(Value::Dict(Rc::new(RefCell::new(pairs))));
                }
                0x91 => {
                    // FROZENSET
                    let items = self.pop_mark(op, offset)?;
                    self.stack.push(Value::Set(Rc::new(RefCell::new(items))));
                }
                b's' => {
                    // SETITEM
                    let v = self.pop(op, offset)?;
                    let k = self.pop(op, offset)?;
                    let target = self.top(op, offset)?.clone();
                    self.set_items(&target, vec![(k, v)], op, offset)?;
                }
                b'u' => {
                    // SETITEMS
                    let items = self.pop_mark(op, offset)?;
                    if items.len() % 2 != 0 {
                        return Err(self.invalid(offset, "SETITEMS with an odd number of items"));
                    }
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    let target = self.top(op, offset)?.clone();
                    self.set_items(&target, pairs, op, offset)?;
                }
                b'a' => {
                    // APPEND
                    let v = self.pop(op, offset)?;
                    let target = self.top(op, offset)?.clone();
                    self.append_items(&target, vec![v], op, offset)?;
                }
                b'e' | 0x90 => {
                    // APPENDS / ADDITEMS
                    let items = self.pop_mark(op, offset)?;
                    let target = self.top(op, offset)?.clone();
                    self.append_items(&target, items, op, offset)?;
                }
                // ---- memo
                b'q' => {
                    let k = self.u8(op)? as u32;
                    self.memo_put(k, op, offset)?;
                }
                b'r' => {
                    let k = self.u32(op)?;
                    self.memo_put(k, op, offset)?;
                }
                b'p' => {
                    let line = self.line(op)?;
                    let k = std::str::from_utf8(line)
                        .ok()
                        .and_then(|s| s.parse::<u32>().ok())
                        .ok_or_else(|| self.invalid(offset, "bad PUT index"))?;
                    self.memo_put(k, op, offset)?;
                }
                0x94 => {
                    // MEMOIZE
                    let k = self.memo.len() as u32;
                    self.memo_put(k, op, offset)?;
                }
                b'h' => {
                    let k = self.u8(op)? as u32;
                    let v = self.memo_get(k, offset)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let k = self.u32(op)?;
                    let v = self.memo_get(k, offset)?;
                    self.stack.push(v);
                }
                b'g' => {
                    let line = self.line(op)?;
                    let k = std::str::from_utf8(line)
                        .ok()
                        .and_then(|s| s.parse::<u32>().ok())
                        .ok_or_else(|| self.invalid(offset, "bad GET index"))?;
                    let v = self.memo_get(k, offset)?;
                    self.stack.push(v);
                }
                // ---- globals and calls
                b'c' => {
                    // GLOBAL "module\nname\n"
                    let m = self.line(op)?;
                    let n = self.line(op)?;
                    let module = std::str::from_utf8(m)
                        .map_err(|_| self.invalid(offset, "non-UTF-8 GLOBAL module"))?;
                    let name = std::str::from_utf8(n)
                        .map_err(|_| self.invalid(offset, "non-UTF-8 GLOBAL name"))?;
                    self.check_global(module, name, offset)?;
                    self.stack.push(Value::Global {
                        module: rc_str(module),
                        name: rc_str(name),
                    });
                }
                0x93 => {
                    // STACK_GLOBAL
                    let name = self.pop(op, offset)?;
                    let module = self.pop(op, offset)?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => {
                            self.check_global(&module, &name, offset)?;
                            self.stack.push(Value::Global { module, name })
                        }
                        _ => return Err(self.invalid(offset, "STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    // REDUCE
                    let args = self.pop(op, offset)?;
                    let callable = self.pop(op, offset)?;
                    self.stack.push(Self::reduce(callable, args));
                }
                0x81 => {
                    // NEWOBJ
                    let args = self.pop(op, offset)?;
                    let cls = self.pop(op, offset)?;
                    self.stack.push(Self::reduce(cls, args));
                }
                0x92 => {
                    // NEWOBJ_EX
                    let kwargs = self.pop(op, offset)?;
                    let args = self.pop(op, offset)?;
                    let cls = self.pop(op, offset)?;
                    self.stack.push(Self::reduce(
                        cls,
                        Value::Tuple(Rc::from(vec![args, kwargs])),
                    ));
                }
                b'b' => {
                    // BUILD
                    let state = self.pop(op, offset)?;
                    // on dicts (e.g. an OrderedDict's `_metadata` attribute) the state is dropped
                    if let Value::Object(o) = self.top(op, offset)? {
                        o.borrow_mut().state = Some(state);
                    }
                }
                // ---- persistent ids
                b'Q' => {
                    let pid = Rc::new(self.pop(op, offset)?);
                    self.pids.push(pid.clone());
                    self.stack.push(Value::PersistentId(pid));
                }
                b'P' => {
                    let line = self.line(op)?;
                    let pid = Rc::new(Self::py2_str(line));
                    self.pids.push(pid.clone());
                    self.stack.push(Value::PersistentId(pid));
                }
                _ => {
                    return Err(PickleError::UnknownOpcode {
                        op,
                        op_char: op as char,
                        offset,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_protocol2_dict() {
        // pickle.dumps({'a': 1, 'b': (2.5, None, True)}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02G@\x04\x00\x00\x00\x00\x00\x00N\x88\x87q\x03u.";
        let (v, end) = load(data, 0).unwrap();
        assert_eq!(end, data.len());
        let Value::Dict(d) = v else {
            panic!("not a dict")
        };
        let d = d.borrow();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].0.as_str(), Some("a"));
        assert_eq!(d[0].1.as_int(), Some(1));
        let t = d[1].1.as_seq().unwrap();
        assert!(matches!(t[0], Value::Float(f) if f == 2.5));
        assert!(matches!(t[1], Value::None));
        assert!(matches!(t[2], Value::Bool(true)));
    }

    #[test]
    fn memo_shares_mutable_containers() {
        // x = []; pickle.dumps([x, x], 2) then x appended after memoisation:
        // PROTO 2, EMPTY_LIST, BINPUT 0, MARK, EMPTY_LIST, BINPUT 1, BINGET 1, APPENDS, STOP
        let data = b"\x80\x02]q\x00(]q\x01h\x01e.";
        let (v, _) = load(data, 0).unwrap();
        let Value::List(l) = v else { panic!() };
        let l = l.borrow();
        let (Value::List(a), Value::List(b)) = (&l[0], &l[1]) else {
            panic!()
        };
        assert!(Rc::ptr_eq(a, b));
    }

    #[test]
    fn long1_negative_and_big() {
        assert!(matches!(Vm::long_from_le(&[0xff]), Value::Int(-1)));
        assert!(
            matches!(Vm::long_from_le(&[0x6a, 0xa8]), Value::Int(v) if v == i16::from_le_bytes([0x6a, 0xa8]) as i64)
        );
        assert!(matches!(Vm::long_from_le(&[0; 10]), Value::BigInt(_)));
    }

    #[test]
    fn unknown_opcode_reports_byte_and_offset() {
        let err = load(b"\x80\x02\xff", 0).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("0xff") && msg.contains("offset 2"), "{msg}");
    }

    #[test]
    fn truncated_reports_offset() {
        let err = load(b"\x80\x02X\x10\x00\x00\x00ab", 0).unwrap_err();
        assert!(
            matches!(err, PickleError::Truncated { offset: 7, .. }),
            "{err}"
        );
        let err = load(b"\x80\x02N", 0).unwrap_err();
        assert!(matches!(err, PickleError::NoStop { offset: 3 }), "{err}");
    }

    /// `None` wrapped in `levels` one-element tuples (TUPLE1 opcodes), then `tail`.
    fn nested_tuples(levels: usize, tail: &[u8]) -> Vec<u8> {
        let mut p = b"\x80\x02N".to_vec();
        p.extend(std::iter::repeat(0x85).take(levels));
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn nesting_200000_levels_is_an_error_not_a_stack_overflow() {
        let err = load(&nested_tuples(200_000, b"."), 0).unwrap_err();
        assert!(
            matches!(err, PickleError::TooDeep { limit: MAX_NESTING }),
            "{err}"
        );
        assert!(err.to_string().contains("1000 levels"), "{err}");
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        let (v, _) = load(&nested_tuples(MAX_NESTING, b"."), 0).unwrap();
        assert_eq!(nesting_depth(&v, MAX_NESTING).unwrap(), MAX_NESTING);
        let err = load(&nested_tuples(MAX_NESTING + 1, b"."), 0).unwrap_err();
        assert!(matches!(err, PickleError::TooDeep { .. }), "{err}");
    }

    #[test]
    fn deep_values_discarded_or_left_behind_are_dropped_without_recursion() {
        // POP of a deep value, then STOP on None
        let (v, _) = load(&nested_tuples(200_000, b"0N."), 0).unwrap();
        assert!(matches!(v, Value::None));
        // a deep value memoised and overwritten, then an error (SETITEM on a tuple)
        let err = load(&nested_tuples(200_000, b"q\x00Nq\x00NNs."), 0).unwrap_err();
        assert!(matches!(err, PickleError::Invalid { .. }), "{err}");
        // no STOP: the deep value is left on the stack
        let err = load(&nested_tuples(200_000, b""), 0).unwrap_err();
        assert!(matches!(err, PickleError::NoStop { .. }), "{err}");
    }

    #[test]
    fn a_list_containing_itself_is_refused() {
        // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP
        let err = load(b"\x80\x02]q\x00h\x00a.", 0).unwrap_err();
        assert!(matches!(err, PickleError::Cycle), "{err}");
    }

    #[test]
    fn shared_values_are_not_cycles() {
        // [x, x] with x = [] (memo shared), nested once more: depth 2
        let (v, _) = load(b"\x80\x02]q\x00(]q\x01h\x01e.", 0).unwrap();
        assert_eq!(nesting_depth(&v, MAX_NESTING).unwrap(), 2);
    }
}
