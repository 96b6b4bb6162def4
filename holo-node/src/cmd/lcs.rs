//! LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest common subsequence
//! of two strings.
//!
//! The dynamic program costs the product of the two lengths in time and in memory (four
//! bytes a cell) and runs in the executor, so it is refused beyond [`CELLS_MAX`] cells
//! (two strings of 4 KiB); Redis has no limit but the allocator's.

use bytes::{Bytes, BytesMut};
use holo_resp::Frame;

use super::op::{Args, Code, Ctx, encode};
use super::{Parsed, Spec, not_integer, parse_i64, syntax_error};

/// Most cells of the table one LCS may build.
pub const CELLS_MAX: u64 = 1 << 24;

const LEN: u8 = 1;
const IDX: u8 = 2;
const WITHMATCHLEN: u8 = 4;

pub fn parse(_: &Spec, rest: &[Bytes]) -> Parsed {
    let mut flags = 0;
    let mut min_len = 0i64;
    let mut i = 2;
    while i < rest.len() {
        match rest[i].to_ascii_uppercase().as_slice() {
            b"LEN" => flags |= LEN,
            b"IDX" => flags |= IDX,
            b"WITHMATCHLEN" => flags |= WITHMATCHLEN,
            b"MINMATCHLEN" if i + 1 < rest.len() => {
                match parse_i64(&rest[i + 1]) {
                    Some(n) => min_len = n.max(0),
                    None => return Parsed::Reply(not_integer()),
                }
                i += 1;
            }
            _ => return Parsed::Reply(syntax_error()),
        }
        i += 1;
    }
    if flags & LEN != 0 && flags & IDX != 0 {
        return Parsed::Reply(Frame::error(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    Parsed::read(
        vec![rest[0].clone(), rest[1].clone()],
        encode(
            Code::Lcs,
            flags,
            &[&rest[0], &rest[1], &min_len.to_le_bytes()],
        ),
    )
}

pub fn exec(flags: u8, args: &Args<'_>, ctx: &mut Ctx<'_>) -> Result<Frame, Frame> {
    let a = ctx.str(args.at(0)?)?.unwrap_or_default();
    let b = ctx.str(args.at(1)?)?.unwrap_or_default();
    let min_len = args.int(2)?.max(0) as u64;
    let (n, m) = (a.len(), b.len());
    let cells = (n as u64 + 1) * (m as u64 + 1);
    if cells > CELLS_MAX {
        return Err(Frame::error(format!(
            "ERR LCS of strings of {n} and {m} bytes needs {cells} cells; HoloStore computes at most {CELLS_MAX}"
        )));
    }
    // table[i * (m + 1) + j]: the LCS length of a[..i] and b[..j].
    let width = m + 1;
    let mut table = vec![0u32; (n + 1) * width];
    for i in 1..=n {
        for j in 1..=m {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let len = table[n * width + m];
    if flags & LEN != 0 {
        return Ok(Frame::Integer(i64::from(len)));
    }
    // Walk back from the end: a match goes diagonally; otherwise towards the larger
    // neighbour, `j` on a tie. Matched positions come out last first.
    let (mut i, mut j) = (n, m);
    let mut pairs = Vec::with_capacity(len as usize);
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            pairs.push((i - 1, j - 1));
            i -= 1;
            j -= 1;
        } else if table[(i - 1) * width + j] > table[i * width + j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    if flags & IDX == 0 {
        let mut out = BytesMut::with_capacity(pairs.len());
        out.extend(pairs.iter().rev().map(|&(i, _)| a[i]));
        return Ok(Frame::Bulk(out.freeze()));
    }
    // Runs of positions contiguous in both strings, last first, as Redis lists them.
    let mut matches = Vec::new();
    let mut k = 0;
    while k < pairs.len() {
        let (end_a, end_b) = pairs[k];
        let mut start = k;
        while start + 1 < pairs.len()
            && pairs[start + 1].0 + 1 == pairs[start].0
            && pairs[start + 1].1 + 1 == pairs[start].1
        {
            start += 1;
        }
        let (start_a, start_b) = pairs[start];
        let run = (end_a - start_a + 1) as u64;
        if run >= min_len {
            let range = |s: usize, e: usize| {
                Frame::Array(vec![Frame::Integer(s as i64), Frame::Integer(e as i64)])
            };
            let mut item = vec![range(start_a, end_a), range(start_b, end_b)];
            if flags & WITHMATCHLEN != 0 {
                item.push(Frame::Integer(run as i64));
            }
            matches.push(Frame::Array(item));
        }
        k = start + 1;
    }
    let t = |s: &'static str| Frame::Bulk(Bytes::from_static(s.as_bytes()));
    Ok(Frame::Map(vec![
        (t("matches"), Frame::Array(matches)),
        (t("len"), Frame::Integer(i64::from(len))),
    ]))
}
