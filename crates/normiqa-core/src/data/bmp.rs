//! Whether a BMP file holds all the pixel data its header declares, checked before decoding:
//! `image`'s decoder fills what a truncated file lacks (an RLE stream that ends early, rows
//! cut off) and returns an image, where PIL refuses. Uncompressed rows must all be in the file;
//! an RLE8/RLE4 stream must fill every row (PIL's rule: an end-of-bitmap code before the last
//! row leaves pixels missing, "not enough image data") before the file ends.

/// `Ok` when the file's pixel data is whole; otherwise what is missing. Headers this check does
/// not know (an OS/2 core header, bit fields, embedded JPEG/PNG) are left to the decoder.
pub fn check_whole(b: &[u8]) -> Result<(), String> {
    let u32_at = |i: usize| b.get(i..i + 4).map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")));
    let u16_at = |i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes(s.try_into().expect("2 bytes")));
    let (Some(offset), Some(dib)) = (u32_at(10), u32_at(14)) else {
        return Err(format!("the file ends in its header ({} bytes)", b.len()));
    };
    if dib < 40 {
        return Ok(());
    }
    let (Some(w), Some(h), Some(bpp), Some(comp)) = (u32_at(18), u32_at(22), u16_at(28), u32_at(30)) else {
        return Err(format!("the file ends in its header ({} bytes)", b.len()));
    };
    let (w, h) = (w as i32 as i64, (h as i32 as i64).abs());
    let offset = offset as usize;
    if offset > b.len() {
        return Err(format!("the pixel data starts at byte {offset}, past the end of the file ({} bytes)", b.len()));
    }
    match comp {
        0 => {
            let row = (i64::from(bpp) * w + 31) / 32 * 4;
            let need = row.saturating_mul(h);
            let have = (b.len() - offset) as i64;
            match have >= need {
                true => Ok(()),
                false => Err(format!("{h} rows of {row} bytes need {need} bytes of pixel data; the file holds {have}")),
            }
        }
        1 | 2 => check_rle(&b[offset..], w, h, comp == 2),
        _ => Ok(()),
    }
}

/// Walks an RLE8 (or RLE4) stream of a `w`×`h` image.
fn check_rle(d: &[u8], w: i64, h: i64, rle4: bool) -> Result<(), String> {
    let (mut i, mut x, mut y) = (0usize, 0i64, 0i64);
    let done = |x: i64, y: i64| y >= h || (y == h - 1 && x >= w);
    while !done(x, y) {
        let Some(&[count, code]) = d.get(i..i + 2).map(|s| <&[u8; 2]>::try_from(s).expect("2 bytes")) else {
            return Err(format!("the RLE data ends at row {} of {h} without its end-of-bitmap code", y + 1));
        };
        i += 2;
        match (count, code) {
            (0, 0) => (x, y) = (0, y + 1),
            // before the last row (the loop ends there): pixels missing, as PIL says
            (0, 1) => {
                return Err(format!(
                    "the RLE data ends (end-of-bitmap code) at row {} of {h}: not enough image data",
                    y + 1
                ))
            }
            (0, 2) => {
                let Some(delta) = d.get(i..i + 2) else {
                    return Err("the RLE data ends inside a delta code".into());
                };
                (x, y) = (x + i64::from(delta[0]), y + i64::from(delta[1]));
                i += 2;
            }
            (0, n) => {
                let bytes = if rle4 { (usize::from(n) + 1) / 2 } else { usize::from(n) };
                let padded = bytes + bytes % 2;
                if i + padded > d.len() {
                    return Err(format!("the RLE data ends inside a run of {n} literal pixels at row {}", y + 1));
                }
                i += padded;
                x += i64::from(n);
            }
            (n, _) => x += i64::from(n),
        }
    }
    Ok(())
}
