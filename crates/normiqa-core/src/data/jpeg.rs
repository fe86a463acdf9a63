//! A JPEG's structure, read without decoding pixels: the size its frame header declares (checked
//! against the pixel limit before a decoder allocates anything), and whether the file is whole:
//! an end-of-image marker, and entropy-coded data holding every block the header declares.
//!
//! Neither `jpeg-decoder` nor `zune-jpeg` reports the second: both fill a scan that ends early
//! with grey, so a file cut short and closed with an EOI marker decodes "successfully". Blocks are
//! counted by walking the Huffman codes (sequential scans, and progressive DC scans and first AC
//! scans; a progressive AC refinement scan is only checked for its end marker).

/// What [`inspect`] found.
pub(crate) struct JpegInfo {
    pub width: u32,
    pub height: u32,
    /// `Err(what is missing)` for a truncated or corrupt file.
    pub whole: Result<(), String>,
}

#[derive(Clone, Copy)]
struct Component {
    id: u8,
    h: u32,
    v: u32,
}

struct Frame {
    width: u32,
    height: u32,
    huffman: bool,
    components: Vec<Component>,
}

/// Canonical Huffman table (ITU T.81 F.2.2.3), with a lookup of the codes up to 9 bits.
#[derive(Clone)]
struct Huffman {
    maxcode: [i32; 18],
    valptr: [i32; 17],
    mincode: [i32; 17],
    values: Vec<u8>,
    /// (code length, value) by the next 9 bits; length 0 = a longer code.
    fast: Vec<(u8, u8)>,
}

const FAST_BITS: u32 = 9;

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Huffman {
        let (mut maxcode, mut valptr, mut mincode) = ([-1i32; 18], [0i32; 17], [0i32; 17]);
        let mut fast = vec![(0u8, 0u8); 1 << FAST_BITS];
        let (mut code, mut k) = (0i32, 0i32);
        for l in 1..=16 {
            let n = counts[l - 1] as i32;
            if n > 0 {
                valptr[l] = k;
                mincode[l] = code;
                for c in code..code + n {
                    let v = values.get((k + c - code) as usize).copied();
                    if let (Some(v), true) = (v, l as u32 <= FAST_BITS) {
                        let shift = FAST_BITS - l as u32;
                        let lo = (c as usize) << shift;
                        let hi = ((c as usize + 1) << shift).min(fast.len());
                        fast[lo.min(hi)..hi].fill((l as u8, v));
                    }
                }
                code += n;
                k += n;
                maxcode[l] = code - 1;
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        Huffman {
            maxcode,
            valptr,
            mincode,
            values,
            fast,
        }
    }
}

/// Bits of one scan's entropy-coded data (stuffed zero bytes removed); stops at any marker.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// Unread bits, most significant first.
    acc: u64,
    n: u32,
}

enum Stop {
    /// A marker (or the end of the file) where more data was needed.
    Ended,
    /// A code that is in no table.
    BadCode,
}

impl<'a> Bits<'a> {
    fn fill(&mut self) {
        while self.n <= 56 {
            let Some(&b) = self.data.get(self.pos) else {
                return;
            };
            if b == 0xff {
                if self.data.get(self.pos + 1) != Some(&0) {
                    return;
                }
                self.pos += 1;
            }
            self.pos += 1;
            self.acc |= u64::from(b) << (56 - self.n);
            self.n += 8;
        }
    }

    fn bits(&mut self, count: u8) -> Result<u32, Stop> {
        let count = u32::from(count);
        if count == 0 {
            return Ok(0);
        }
        if self.n < count {
            self.fill();
            if self.n < count {
                return Err(Stop::Ended);
            }
        }
        let v = (self.acc >> (64 - count)) as u32;
        self.acc <<= count;
        self.n -= count;
        Ok(v)
    }

    fn decode(&mut self, t: &Huffman) -> Result<u8, Stop> {
        if self.n < 16 {
            self.fill();
        }
        let (len, v) = t.fast[(self.acc >> (64 - FAST_BITS)) as usize];
        if len > 0 {
            self.bits(len)?;
            return Ok(v);
        }
        let mut l = FAST_BITS as usize + 1;
        loop {
            if l > 16 {
                return Err(Stop::BadCode);
            }
            if self.n < l as u32 {
                return Err(Stop::Ended);
            }
            let code = (self.acc >> (64 - l)) as i32;
            if code <= t.maxcode[l] {
                self.bits(l as u8)?;
                let i = t.valptr[l] + code - t.mincode[l];
                return t.values.get(i as usize).copied().ok_or(Stop::BadCode);
            }
            l += 1;
        }
    }

    /// Skips to the next restart marker (dropping the byte's padding bits), `false` when
    /// there is none.
    fn restart(&mut self) -> bool {
        self.acc = 0;
        self.n = 0;
        match (self.data.get(self.pos), self.data.get(self.pos + 1)) {
            (Some(0xff), Some(m)) if (0xd0..=0xd7).contains(m) => {
                self.pos += 2;
                true
            }
            _ => false,
        }
    }
}

struct Scan {
    comps: Vec<(Component, usize, usize)>,
    ss: u8,
    se: u8,
    ah: u8,
}

/// Walks the file's markers; `Err` when no frame header can be read.
pub(crate) fn inspect(b: &[u8]) -> Result<JpegInfo, String> {
    let mut w = Walker {
        b,
        pos: 2,
        frame: None,
        dc: vec![None; 4],
        ac: vec![None; 4],
        restart: 0,
        scans: 0,
    };
    let whole = w.walk();
    match w.frame {
        Some(f) => Ok(JpegInfo {
            width: f.width,
            height: f.height,
            whole,
        }),
        None => Err(whole.err().unwrap_or_else(|| "no frame header".into())),
    }
}

struct Walker<'a> {
    b: &'a [u8],
    pos: usize,
    frame: Option<Frame>,
    dc: Vec<Option<Huffman>>,
    ac: Vec<Option<Huffman>>,
    restart: u32,
    scans: usize,
}

impl<'a> Walker<'a> {
    fn walk(&mut self) -> Result<(), String> {
        loop {
            let marker = self
                .next_marker()
                .ok_or("the file ends before its end-of-image marker")?;
            match marker {
                0xd9 => {
                    return match self.scans {
                        0 => Err("the end-of-image marker comes before any image data".into()),
                        _ => Ok(()),
                    }
                }
                0xd8 | 0x01 | 0xd0..=0xd7 => continue,
                _ => {}
            }
            let seg = self.segment(marker)?;
            match marker {
                0xc4 => self.read_dht(seg)?,
                0xdd if seg.len() >= 2 => {
                    self.restart = u16::from_be_bytes([seg[0], seg[1]]).into()
                }
                0xda => {
                    let scan = self.read_sos(seg)?;
                    self.scans += 1;
                    self.check_scan(&scan)?;
                }
                0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => {
                    self.read_sof(marker, seg)?
                }
                _ => {}
            }
        }
    }

    /// The next marker byte, skipping stray bytes and fill bytes; `None` at the end of the file.
    fn next_marker(&mut self) -> Option<u8> {
        loop {
            while *self.b.get(self.pos)? != 0xff {
                self.pos += 1;
            }
            while *self.b.get(self.pos)? == 0xff {
                self.pos += 1;
            }
            let m = self.b[self.pos];
            self.pos += 1;
            if m != 0 {
                return Some(m);
            }
        }
    }

    fn segment(&mut self, marker: u8) -> Result<&'a [u8], String> {
        let b = self.b;
        let len = match (b.get(self.pos), b.get(self.pos + 1)) {
            (Some(&h), Some(&l)) => u16::from_be_bytes([h, l]) as usize,
            _ => {
                return Err(format!(
                    "the file ends inside marker segment 0x{marker:02x}"
                ))
            }
        };
        if len < 2 || self.pos + len > b.len() {
            return Err(format!(
                "marker segment 0x{marker:02x} runs past the end of the file"
            ));
        }
        let seg = &b[self.pos + 2..self.pos + len];
        self.pos += len;
        Ok(seg)
    }

    fn read_sof(&mut self, marker: u8, s: &[u8]) -> Result<(), String> {
        if s.len() < 6 {
            return Err("frame header too short".into());
        }
        let height = u16::from_be_bytes([s[1], s[2]]) as u32;
        let width = u16::from_be_bytes([s[3], s[4]]) as u32;
        let n = s[5] as usize;
        if s.len() < 6 + 3 * n || n == 0 {
            return Err("frame header too short for its components".into());
        }
        let components = (0..n)
            .map(|i| {
                let c = &s[6 + 3 * i..9 + 3 * i];
                Component {
                    id: c[0],
                    h: u32::from(c[1] >> 4).max(1),
                    v: u32::from(c[1] & 15).max(1),
                }
            })
            .collect();
        let huffman = !(0xc9..=0xcf).contains(&marker) && marker != 0xc3;
        self.frame = Some(Frame {
            width,
            height,
            huffman,
            components,
        });
        Ok(())
    }

    fn read_dht(&mut self, mut s: &[u8]) -> Result<(), String> {
        while s.len() >= 17 {
            let (class, id) = (s[0] >> 4, (s[0] & 15) as usize);
            let counts: [u8; 16] = s[1..17].try_into().unwrap();
            let n: usize = counts.iter().map(|&c| c as usize).sum();
            if s.len() < 17 + n || id > 3 {
                return Err("bad Huffman table".into());
            }
            let t = Huffman::new(&counts, s[17..17 + n].to_vec());
            match class {
                0 => self.dc[id] = Some(t),
                _ => self.ac[id] = Some(t),
            }
            s = &s[17 + n..];
        }
        Ok(())
    }

    fn read_sos(&self, s: &[u8]) -> Result<Scan, String> {
        let frame = self
            .frame
            .as_ref()
            .ok_or("a scan comes before the frame header")?;
        let n = *s.first().ok_or("empty scan header")? as usize;
        if s.len() < 1 + 2 * n + 3 {
            return Err("scan header too short".into());
        }
        let mut comps = Vec::with_capacity(n);
        for i in 0..n {
            let (id, tables) = (s[1 + 2 * i], s[2 + 2 * i]);
            let c = frame
                .components
                .iter()
                .find(|c| c.id == id)
                .ok_or("a scan names a component the frame does not have")?;
            comps.push((*c, (tables >> 4) as usize & 3, (tables & 15) as usize & 3));
        }
        let t = &s[1 + 2 * n..];
        Ok(Scan {
            comps,
            ss: t[0],
            se: t[1],
            ah: t[2] >> 4,
        })
    }

    /// Counts the blocks of the scan that starts at `self.pos` and moves past its data.
    fn check_scan(&mut self, scan: &Scan) -> Result<(), String> {
        let data_start = self.pos;
        let counted = self.count_blocks(scan);
        self.pos = data_start + scan_data_len(&self.b[data_start..]);
        match counted {
            Some(Err((done, total))) => Err(format!(
                "scan {} ends after {done} of its {total} blocks (the file is cut short or corrupt)",
                self.scans
            )),
            Some(Ok(())) | None => {
                if self.pos >= self.b.len() {
                    Err(format!("the file ends inside scan {}", self.scans))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// `None` when the scan cannot be counted here (arithmetic coding, refinement of AC
    /// coefficients, missing tables); else `Err((blocks decoded, blocks declared))`.
    fn count_blocks(&self, scan: &Scan) -> Option<Result<(), (u64, u64)>> {
        let frame = self.frame.as_ref()?;
        if !frame.huffman || (scan.ss > 0 && scan.ah > 0) || frame.width == 0 || frame.height == 0 {
            return None;
        }
        let units = mcu_layout(frame, scan);
        let per_mcu: u64 = units.blocks.iter().map(|(n, _, _)| *n as u64).sum();
        let total = units.mcus * per_mcu;
        let mut bits = Bits {
            data: &self.b[self.pos..],
            pos: 0,
            acc: 0,
            n: 0,
        };
        let mut eobrun = 0u32;
        for m in 0..units.mcus {
            if self.restart > 0 && m > 0 && m % self.restart as u64 == 0 {
                if !bits.restart() {
                    return Some(Err((m * per_mcu, total)));
                }
                eobrun = 0;
            }
            for &(n, dc, ac) in &units.blocks {
                let (dc, ac) = (self.dc[dc].as_ref(), self.ac[ac].as_ref());
                for _ in 0..n {
                    let r = block(&mut bits, scan, dc, ac, &mut eobrun)?;
                    if r.is_err() {
                        return Some(Err((m * per_mcu, total)));
                    }
                }
            }
        }
        Some(Ok(()))
    }
}

struct Units {
    mcus: u64,
    /// Per scan component: blocks per MCU, DC table, AC table.
    blocks: Vec<(u32, usize, usize)>,
}

fn mcu_layout(frame: &Frame, scan: &Scan) -> Units {
    let hmax = frame.components.iter().map(|c| c.h).max().unwrap_or(1);
    let vmax = frame.components.iter().map(|c| c.v).max().unwrap_or(1);
    let (w, h) = (frame.width as u64, frame.height as u64);
    if scan.comps.len() == 1 {
        let (c, dc, ac) = scan.comps[0];
        let cw = (w * c.h as u64).div_ceil(hmax as u64);
        let ch = (h * c.v as u64).div_ceil(vmax as u64);
        Units {
            mcus: cw.div_ceil(8) * ch.div_ceil(8),
            blocks: vec![(1, dc, ac)],
        }
    } else {
        Units {
            mcus: w.div_ceil(8 * hmax as u64) * h.div_ceil(8 * vmax as u64),
            blocks: scan
                .comps
                .iter()
                .map(|&(c, dc, ac)| (c.h * c.v, dc, ac))
                .collect(),
        }
    }
}

/// Reads one block's codes. `None` when a needed table is missing (not countable).
fn block(
    bits: &mut Bits,
    scan: &Scan,
    dc: Option<&Huffman>,
    ac: Option<&Huffman>,
    eobrun: &mut u32,
) -> Option<Result<(), Stop>> {
    let r = if scan.ss == 0 {
        if scan.ah > 0 {
            bits.bits(1).map(drop)
        } else {
            let dc = dc?;
            let sequential = scan.se > 0;
            let ac = if sequential { Some(ac?) } else { None };
            dc_then_ac(bits, dc, ac)
        }
    } else {
        ac_first(bits, scan, ac?, eobrun)
    };
    Some(r)
}

fn dc_then_ac(bits: &mut Bits, dc: &Huffman, ac: Option<&Huffman>) -> Result<(), Stop> {
    let s = bits.decode(dc)?;
    bits.bits(s & 15)?;
    let Some(ac) = ac else { return Ok(()) };
    let mut k = 1;
    while k < 64 {
        let rs = bits.decode(ac)?;
        let (r, s) = (rs >> 4, rs & 15);
        if s == 0 {
            if r != 15 {
                break;
            }
            k += 16;
        } else {
            k += r as u32 + 1;
            bits.bits(s)?;
        }
    }
    Ok(())
}

fn ac_first(bits: &mut Bits, scan: &Scan, ac: &Huffman, eobrun: &mut u32) -> Result<(), Stop> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let mut k = scan.ss as u32;
    while k <= scan.se as u32 {
        let rs = bits.decode(ac)?;
        let (r, s) = (rs >> 4, rs & 15);
        if s == 0 {
            if r < 15 {
                *eobrun = (1 << r) - 1 + bits.bits(r)?;
                break;
            }
            k += 16;
        } else {
            k += r as u32 + 1;
            bits.bits(s)?;
        }
    }
    Ok(())
}

/// Length of the entropy-coded data at the start of `d`: up to the first marker that is not a
/// restart marker (or the whole slice when there is none).
fn scan_data_len(d: &[u8]) -> usize {
    let mut i = 0;
    while i + 1 < d.len() {
        if d[i] == 0xff {
            let m = d[i + 1];
            if m != 0x00 && m != 0xff && !(0xd0..=0xd7).contains(&m) {
                return i;
            }
            if m == 0xff {
                i += 1;
                continue;
            }
        }
        i += 1;
    }
    d.len()
}
