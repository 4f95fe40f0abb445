//! Planning: find what differs and cut it into chunks.
//!
//! Per table: `min/max/count` on both sides. Keys outside the common range exist on one side
//! only and are cut at every `target`-th key of that side (so sparse keys and huge gaps give
//! chunks of the right size). Inside the common range, *fine* bin checksums (about
//! [`FINE_BIN_ROWS`] rows per bin, computed by each database over the whole salted rows) are
//! compared; a differing bin that holds more than `target` rows (a dense cluster) is split with
//! narrower bins, recursively, rather than emitted as one giant range. Runs of differing bins
//! are then merged into chunks of up to `target` rows, also across matching bins when those
//! hold fewer than [`MERGE_GAP_ROWS`] rows (a chunk costs about as much as copying that many
//! rows).

use crate::error::Result;
use crate::model::{Bin, Chunk, KeyStats, TablePlan, TableSpec};
use crate::stack::Stack;

/// Rows per checksum bin aimed at (the finer, the less an update drags along).
pub const FINE_BIN_ROWS: u64 = 100;
/// At most this many bins per table and pass (bounds memory and result size).
pub const MAX_BINS: u64 = 200_000;
/// Matching rows a chunk may carry along to join two differing ranges (at most a tenth of
/// the target chunk size).
pub const MERGE_GAP_ROWS: u64 = 1_000;

/// A stretch of keys: differing (to copy) or matching, with the rows it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    min: i64,
    max: i64,
    rows: u64,
    differs: bool,
}

/// Plans one table: its statistics and its chunks.
pub async fn plan_table<S: Stack>(
    source: &S,
    dest: &S,
    table: &TableSpec,
    salt: &str,
    target: u64,
) -> Result<(TablePlan, Vec<Chunk>)> {
    let target = target.max(1);
    let (s, d) = futures::try_join!(source.stats(table), dest.stats(table))?;
    let mut segments = Vec::new();
    match (range(&s), range(&d)) {
        (None, None) => {}
        (Some((a, b)), None) => {
            segments.extend(split(source, table, a, b, Some(s.count), target).await?)
        }
        (None, Some((a, b))) => {
            segments.extend(split(dest, table, a, b, Some(d.count), target).await?)
        }
        (Some((sa, sb)), Some((da, db))) => {
            let lo = sa.max(da);
            let hi = sb.min(db);
            if lo > hi {
                let mut parts = split(source, table, sa, sb, Some(s.count), target).await?;
                parts.extend(split(dest, table, da, db, Some(d.count), target).await?);
                parts.sort_by_key(|p| p.min);
                segments.extend(parts);
            } else {
                if sa < lo {
                    segments.extend(split(source, table, sa, lo - 1, None, target).await?);
                } else if da < lo {
                    segments.extend(split(dest, table, da, lo - 1, None, target).await?);
                }
                let hint = s.count.max(d.count);
                compare(
                    source,
                    dest,
                    table,
                    salt,
                    lo,
                    hi,
                    hint,
                    target,
                    &mut segments,
                )
                .await?;
                if sb > hi {
                    segments.extend(split(source, table, hi + 1, sb, None, target).await?);
                } else if db > hi {
                    segments.extend(split(dest, table, hi + 1, db, None, target).await?);
                }
            }
        }
    }
    let chunks = coalesce(&table.name, &segments, target);
    let plan = TablePlan {
        table: table.name.clone(),
        range_key: table.range_key.clone(),
        source: s,
        dest: d,
        chunks: chunks.len(),
        estimated_rows: chunks.iter().map(|c| c.estimated_rows).sum(),
    };
    Ok((plan, chunks))
}

fn range(s: &KeyStats) -> Option<(i64, i64)> {
    s.min.zip(s.max)
}

/// Cuts `[lo, hi]`, where only `side` has rows, into differing segments of about `target` rows.
/// `known_count`: the rows in the range, when the caller knows it.
async fn split<S: Stack>(
    side: &S,
    table: &TableSpec,
    lo: i64,
    hi: i64,
    known_count: Option<u64>,
    target: u64,
) -> Result<Vec<Segment>> {
    let count = match known_count {
        Some(n) => n,
        None => side.count_range(table, lo, hi).await?,
    };
    let span = hi as i128 - lo as i128 + 1;
    let mut cuts = if table.key_is_unique && count as i128 == span {
        // Dense unique keys: every key is there, so the cuts need no query.
        let mut v = Vec::new();
        let mut k = lo as i128 + target as i128 - 1;
        while k < hi as i128 {
            v.push(k as i64);
            k += target as i128;
        }
        v
    } else {
        side.boundaries(table, lo, hi, target).await?
    };
    cuts.dedup();
    let mut out = Vec::new();
    let mut start = lo;
    let mut left = count;
    for cut in cuts {
        if cut >= hi {
            break;
        }
        let rows = target.min(left);
        out.push(Segment {
            min: start,
            max: cut,
            rows,
            differs: true,
        });
        left -= rows;
        start = cut + 1;
    }
    if left > 0 || out.is_empty() {
        out.push(Segment {
            min: start,
            max: hi,
            rows: left,
            differs: true,
        });
    } else if let Some(last) = out.last_mut() {
        last.max = hi;
    }
    Ok(out)
}

/// Compares `[lo, hi]` (both sides have rows around it) by bin checksums, appending segments.
#[allow(clippy::too_many_arguments)]
async fn compare<S: Stack>(
    source: &S,
    dest: &S,
    table: &TableSpec,
    salt: &str,
    lo: i64,
    hi: i64,
    rows_hint: u64,
    target: u64,
    out: &mut Vec<Segment>,
) -> Result<()> {
    let span = hi as i128 - lo as i128 + 1;
    if span > i64::MAX as i128 {
        // (key - lo) must fit an i64 in both engines: halve the range first.
        let mid = ((lo as i128 + hi as i128) / 2) as i64;
        Box::pin(compare(
            source, dest, table, salt, lo, mid, rows_hint, target, out,
        ))
        .await?;
        return Box::pin(compare(
            source,
            dest,
            table,
            salt,
            mid + 1,
            hi,
            rows_hint,
            target,
            out,
        ))
        .await;
    }
    let fine = FINE_BIN_ROWS
        .min(target)
        .max(rows_hint.div_ceil(MAX_BINS))
        .max(1);
    // At least two bins, so that a recursion on one differing bin always narrows.
    let bins_wanted = (rows_hint / fine).clamp(2, MAX_BINS) as i128;
    let width = ((span + bins_wanted - 1) / bins_wanted).max(1) as i64;
    let (a, b) = futures::try_join!(
        source.bins(table, salt, lo, hi, width),
        dest.bins(table, salt, lo, hi, width)
    )?;
    let bin_range = |n: i64| {
        let start = lo as i128 + n as i128 * width as i128;
        let end = (start + width as i128 - 1).min(hi as i128);
        (start as i64, end as i64)
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let (n, sa, db): (i64, Option<&Bin>, Option<&Bin>) = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.bin == y.bin => {
                i += 1;
                j += 1;
                (x.bin, Some(x), Some(y))
            }
            (Some(x), Some(y)) if x.bin < y.bin => {
                i += 1;
                (x.bin, Some(x), None)
            }
            (Some(_), Some(y)) => {
                j += 1;
                (y.bin, None, Some(y))
            }
            (Some(x), None) => {
                i += 1;
                (x.bin, Some(x), None)
            }
            (None, Some(y)) => {
                j += 1;
                (y.bin, None, Some(y))
            }
            (None, None) => unreachable!(),
        };
        let (start, end) = bin_range(n);
        let rows = sa.map_or(0, |x| x.count).max(db.map_or(0, |x| x.count));
        let differs = sa != db;
        // A differing bin much fuller than aimed at (keys clustered unevenly) is narrowed
        // rather than copied whole: one more query on a small key range.
        if differs && (rows > target || rows > 4 * fine) && width > 1 {
            Box::pin(compare(
                source, dest, table, salt, start, end, rows, target, out,
            ))
            .await?;
        } else {
            out.push(Segment {
                min: start,
                max: end,
                rows,
                differs,
            });
        }
    }
    Ok(())
}

/// Merges differing segments (in key order) into chunks of at most `target` rows.
fn coalesce(table: &str, segments: &[Segment], target: u64) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut open: Option<Chunk> = None;
    let mut gap_rows = 0u64;
    let max_gap = MERGE_GAP_ROWS.min(target / 10);
    for seg in segments {
        if !seg.differs {
            gap_rows += seg.rows;
            continue;
        }
        match open.as_mut() {
            Some(c) if gap_rows <= max_gap && c.estimated_rows + gap_rows + seg.rows <= target => {
                c.max = seg.max;
                c.estimated_rows += gap_rows + seg.rows;
            }
            _ => {
                chunks.extend(open.take());
                open = Some(Chunk {
                    table: table.to_owned(),
                    min: seg.min,
                    max: seg.max,
                    estimated_rows: seg.rows,
                });
            }
        }
        gap_rows = 0;
    }
    chunks.extend(open);
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(min: i64, max: i64, rows: u64, differs: bool) -> Segment {
        Segment {
            min,
            max,
            rows,
            differs,
        }
    }

    #[test]
    fn coalesce_merges_small_neighbours_only() {
        let segs = [
            seg(0, 9, 10, true),
            seg(10, 19, 10, true),
            seg(20, 29, 5000, false),
            seg(30, 39, 10, true),
            seg(40, 49, 10, false),
            seg(50, 59, 95, true),
            seg(60, 69, 3, false),
            seg(70, 79, 2, true),
            seg(80, 89, 1, true),
        ];
        let c = coalesce("t", &segs, 100);
        // (merge gap here: 100 / 10 = 10 rows)
        let got: Vec<_> = c.iter().map(|c| (c.min, c.max, c.estimated_rows)).collect();
        assert_eq!(got, [(0, 19, 20), (30, 39, 10), (50, 79, 100), (80, 89, 1)]);
    }
}
