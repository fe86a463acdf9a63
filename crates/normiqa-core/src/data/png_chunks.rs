//! The chunks of a PNG file, checked before decoding: every chunk lies inside the file, and the
//! compressed ancillary chunks (an ICC profile `iCCP`, compressed text `zTXt`/`iTXt`) and the
//! plain text (`tEXt`) inflate to bounded sizes. The pixel limit bounds the image; this bounds
//! what comes with it (a 7 MB file whose `iCCP` chunk inflates to 6 GiB was decoded with ~2 GB of
//! memory). Each chunk is inflated into a counter, never into memory, and only up to its limit.

use std::io::Read;

/// The most bytes one ancillary chunk (ICC profile or text) may inflate to (PIL: 1 MiB for text;
/// large printer ICC profiles are a few MiB).
pub const MAX_CHUNK_BYTES: u64 = 16 << 20;
/// The most bytes all text and ICC chunks of one file may hold together, inflated (PIL's
/// `MAX_TEXT_MEMORY`).
pub const MAX_ANCILLARY_BYTES: u64 = 64 << 20;

/// Why a PNG is refused before decoding.
pub enum Refusal {
    /// A chunk reaches past the end of the file.
    Truncated(String),
    /// An ancillary chunk over the limits.
    TooLarge(String),
}

/// Checks the chunks of `b` (a PNG: the 8-byte signature, then chunks), up to `IEND`.
pub fn check(b: &[u8]) -> Result<(), Refusal> {
    let (mut i, mut total) = (8usize, 0u64);
    while i < b.len() {
        let Some(head) = b.get(i..i + 8) else {
            return Err(Refusal::Truncated(format!("the file ends inside a chunk header at byte {i}")));
        };
        let len = u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let kind = String::from_utf8_lossy(&head[4..8]).into_owned();
        // The chunk's data and its CRC.
        let (Some(data), true) = (b.get(i + 8..(i + 8).saturating_add(len)), (i + 12).saturating_add(len) <= b.len()) else {
            return Err(Refusal::Truncated(format!(
                "chunk {kind} at byte {i} declares {len} bytes and its CRC; the file ends {} bytes after its header",
                b.len() - i - 8
            )));
        };
        if kind == "IEND" {
            return Ok(());
        }
        let size = inflated_size(&kind, data);
        if size > MAX_CHUNK_BYTES {
            return Err(Refusal::TooLarge(format!(
                "its {kind} chunk at byte {i} inflates to more than {} MiB, the limit for one PNG text or ICC chunk (a decompression bomb?)",
                MAX_CHUNK_BYTES >> 20
            )));
        }
        total += size;
        if total > MAX_ANCILLARY_BYTES {
            return Err(Refusal::TooLarge(format!(
                "its text and ICC chunks hold more than {} MiB together (the limit; a decompression bomb?)",
                MAX_ANCILLARY_BYTES >> 20
            )));
        }
        i += 12 + len;
    }
    // No IEND, but no chunk cut off either: whether the image data is whole is the decoder's.
    Ok(())
}

/// The bytes an ancillary chunk holds once inflated (capped just over [`MAX_CHUNK_BYTES`]); 0 for
/// other chunks.
fn inflated_size(kind: &str, data: &[u8]) -> u64 {
    let nul = data.iter().position(|&c| c == 0).unwrap_or(data.len());
    let rest = data.get(nul + 1..).unwrap_or(&[]);
    match kind {
        "tEXt" => data.len() as u64,
        // keyword, 0, method, zlib data
        "iCCP" | "zTXt" => inflate_count(rest.get(1..).unwrap_or(&[])),
        // keyword, 0, compressed flag, method, language, 0, translated keyword, 0, text
        "iTXt" => {
            let compressed = rest.first() == Some(&1);
            let mut text = rest.get(2..).unwrap_or(&[]);
            for _ in 0..2 {
                let n = text.iter().position(|&c| c == 0).unwrap_or(text.len());
                text = text.get(n + 1..).unwrap_or(&[]);
            }
            match compressed {
                true => inflate_count(text),
                false => text.len() as u64,
            }
        }
        _ => 0,
    }
}

/// How many bytes the zlib stream `z` inflates to, counted up to `MAX_CHUNK_BYTES + 1` (a corrupt
/// stream counts what it gave before the error; the decoder reports the error).
fn inflate_count(z: &[u8]) -> u64 {
    let mut dec = flate2::read::ZlibDecoder::new(z).take(MAX_CHUNK_BYTES + 1);
    let mut buf = [0u8; 64 << 10];
    let mut n = 0u64;
    while let Ok(k) = dec.read(&mut buf) {
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    n
}
