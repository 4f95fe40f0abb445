//! Planning: find what differs and cut it into chunks.
//!
//! Per table: the key's bounds on both sides and a row count that may be an estimate
//! ([`Stack::bounds`]; it only sizes the bins: the exact counts are summed from the bins and
//! the one-sided ranges). Keys outside the common range exist on one side only, are counted,
//! and are cut at every `target`-th key of that side (so sparse keys and huge gaps give
//! chunks of the right size). Inside the common range, *fine* bin checksums (about
//! [`FINE_BIN_ROWS`] rows per bin, computed by each database over the whole salted rows) are
//! compared. Every differing bin is then **refined**: its key range is re-checksummed on both
//! sides with narrower bins (one query per side and level for all the table's differing ranges,
//! [`REFINE_BATCH`] at a time), level after level, until a differing range holds at most
//! [`LEAF_ROWS`] rows or is one key wide. So one updated row costs a few rows of copying, not
//! its whole bin. A range whose sub-bins mostly differ is taken whole (refining it further
//! would read more than copying it). The differing ranges, in key order, are packed into chunks
//! of at most `target` rows and [`MAX_RANGES_PER_CHUNK`] ranges (adjacent ranges joined):
//! [`Chunk::ranges`]. Ranges are always over the range key, so rows sharing one key value (a
//! child table keyed by its parent id) are never split across chunks.

use crate::error::Result;
use crate::model::{Bin, Chunk, KeyStats, TablePlan, TableSpec};
use crate::stack::{Salted, Stack};

/// Rows per first-level checksum bin aimed at.
pub const FINE_BIN_ROWS: u64 = 100;
/// At most this many bins per table and pass (bounds memory and result size).
pub const MAX_BINS: u64 = 200_000;
/// A differing range with at most this many rows is copied as it is, not refined further.
pub const LEAF_ROWS: u64 = 16;
/// Differing ranges refined per query and side (with [`MAX_FANOUT`], bounds the bins held).
pub const REFINE_BATCH: usize = 2_000;
/// At most this many sub-bins per refined range and level.
pub const MAX_FANOUT: u64 = 64;
/// At most this many key ranges in one chunk (they become one SQL condition).
pub const MAX_RANGES_PER_CHUNK: usize = 1_000;

/// A differing stretch of keys `[min, max]` with the rows it holds (the larger side's count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    min: i64,
    max: i64,
    rows: u64,
}

/// One table to compare and plan: both sides, the table, the salt of every checksum and the
/// rows a chunk aims at (at least 1: built by [`TablePair::new`]).
pub struct TablePair<'a, S> {
    /// The side rows are copied from.
    pub(crate) source: &'a S,
    /// The side rows are copied to.
    pub(crate) dest: &'a S,
    /// The table.
    pub(crate) table: &'a TableSpec,
    /// Salts every checksum of the run.
    pub(crate) salt: &'a str,
    /// Rows per chunk.
    pub(crate) target: u64,
}

impl<S> Clone for TablePair<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for TablePair<'_, S> {}

impl<'a, S: Stack> TablePair<'a, S> {
    /// The table under the run's salt, as the checksum queries take it.
    pub(crate) fn salted(&self) -> Salted<'a> {
        Salted {
            table: self.table,
            salt: self.salt,
        }
    }

    /// The pair, with a target of at least one row.
    pub fn new(
        source: &'a S,
        dest: &'a S,
        table: &'a TableSpec,
        salt: &'a str,
        target: u64,
    ) -> Self {
        TablePair {
            source,
            dest,
            table,
            salt,
            target: target.max(1),
        }
    }

    /// The bins of `specs` (`(lo, hi, width)` ranges) on both sides, queried at once.
    async fn bins_of_both(&self, specs: &[(i64, i64, i64)]) -> Result<(RangeBins, RangeBins)> {
        futures::try_join!(
            self.source.bins_multi(self.salted(), specs),
            self.dest.bins_multi(self.salted(), specs)
        )
    }
}

/// Plans one table: its statistics and its chunks.
pub async fn plan_table<S: Stack>(pair: TablePair<'_, S>) -> Result<(TablePlan, Vec<Chunk>)> {
    let (source, dest, table, target) = (pair.source, pair.dest, pair.table, pair.target);
    // The bounds, and counts that may be estimates: the exact counts come out of the
    // comparison itself (every row is in a bin or in a range one side holds alone).
    let (s, d) = futures::try_join!(source.bounds(table), dest.bounds(table))?;
    let mut segments = Vec::new();
    let (mut source_rows, mut dest_rows) = (0u64, 0u64);
    match (range(&s), range(&d)) {
        (None, None) => {}
        (Some((a, b)), None) => {
            let (parts, rows) = split(source, table, a, b, target).await?;
            segments.extend(parts);
            source_rows += rows;
        }
        (None, Some((a, b))) => {
            let (parts, rows) = split(dest, table, a, b, target).await?;
            segments.extend(parts);
            dest_rows += rows;
        }
        (Some((sa, sb)), Some((da, db))) => {
            let lo = sa.max(da);
            let hi = sb.min(db);
            if lo > hi {
                let (mut parts, rows) = split(source, table, sa, sb, target).await?;
                source_rows += rows;
                let (more, rows) = split(dest, table, da, db, target).await?;
                dest_rows += rows;
                parts.extend(more);
                parts.sort_by_key(|p| p.min);
                segments.extend(parts);
            } else {
                if sa < lo {
                    let (parts, rows) = split(source, table, sa, lo - 1, target).await?;
                    segments.extend(parts);
                    source_rows += rows;
                } else if da < lo {
                    let (parts, rows) = split(dest, table, da, lo - 1, target).await?;
                    segments.extend(parts);
                    dest_rows += rows;
                }
                let hint = s.count.max(d.count);
                let (a, b) = compare(pair, lo, hi, hint, &mut segments).await?;
                source_rows += a;
                dest_rows += b;
                if sb > hi {
                    let (parts, rows) = split(source, table, hi + 1, sb, target).await?;
                    segments.extend(parts);
                    source_rows += rows;
                } else if db > hi {
                    let (parts, rows) = split(dest, table, hi + 1, db, target).await?;
                    segments.extend(parts);
                    dest_rows += rows;
                }
            }
        }
    }
    let s = KeyStats {
        count: source_rows,
        ..s
    };
    let d = KeyStats {
        count: dest_rows,
        ..d
    };
    let chunks = coalesce(&table.name, &mut segments, target);
    let plan = TablePlan::new(table, s, d, &chunks);
    Ok((plan, chunks))
}

/// Cuts key ranges known to differ into chunks without comparing them: change tracking's
/// changed keys since the marker, which almost all differ (copying an equal row again is
/// harmless, and cheaper than checksumming it first). With a unique range key a range of `n`
/// keys holds at most `n` rows; otherwise (a child table keyed by its parent id) the source's
/// rows per range are counted, so chunks keep to `target` rows.
pub async fn plan_changed_ranges<S: Stack>(
    source: &S,
    table: &TableSpec,
    ranges: &[(i64, i64)],
    changed_keys: u64,
    target: u64,
) -> Result<(TablePlan, Vec<Chunk>)> {
    let counts = if table.key_is_unique {
        ranges
            .iter()
            .map(|&(lo, hi)| (hi as i128 - lo as i128 + 1) as u64)
            .collect()
    } else {
        let mut counts = Vec::with_capacity(ranges.len());
        for batch in ranges.chunks(REFINE_BATCH) {
            counts.extend(source.count_ranges(table, batch).await?);
        }
        counts
    };
    let mut segments: Vec<Segment> = ranges
        .iter()
        .zip(counts)
        .map(|(&(lo, hi), rows)| Segment {
            min: lo,
            max: hi,
            // A key deleted on the source still has destination rows to delete.
            rows: rows.max(1),
        })
        .collect();
    let chunks = coalesce(&table.name, &mut segments, target.max(1));
    let plan = TablePlan {
        changed_keys: Some(changed_keys),
        ..TablePlan::new(table, KeyStats::default(), KeyStats::default(), &chunks)
    };
    Ok((plan, chunks))
}

/// Plans one table from the key ranges that may differ (change tracking: the runs of range
/// keys the source changed), without looking at the rest of the table: each range is
/// checksummed on both sides as one bin, differing ones are refined as in [`plan_table`] and
/// packed into chunks. `ranges` are disjoint and ascending; `changed_keys` is reported in the
/// [`TablePlan`] (whose `source`/`dest` statistics stay empty).
pub async fn plan_ranges<S: Stack>(
    pair: TablePair<'_, S>,
    ranges: &[(i64, i64)],
    changed_keys: u64,
) -> Result<(TablePlan, Vec<Chunk>)> {
    let table = pair.table;
    let mut out = Vec::new();
    let mut todo = Vec::new();
    for batch in ranges.chunks(REFINE_BATCH) {
        let specs: Vec<(i64, i64, i64)> = batch
            .iter()
            .map(|&(lo, hi)| {
                let span = (hi as i128 - lo as i128 + 1).clamp(1, i64::MAX as i128) as i64;
                (lo, hi, span)
            })
            .collect();
        let (a, b) = pair.bins_of_both(&specs).await?;
        let diffs = differing_ranges(&a, &b);
        for ((i, _), x, y) in diffs {
            let (lo, hi, _) = specs[i];
            let seg = Segment {
                min: lo,
                max: hi,
                rows: rows_of(x, y),
            };
            if seg.rows <= LEAF_ROWS || lo == hi {
                out.push(seg);
            } else {
                todo.push(seg);
            }
        }
    }
    refine(pair, todo, &mut out).await?;
    let chunks = coalesce(&table.name, &mut out, pair.target);
    let plan = TablePlan {
        changed_keys: Some(changed_keys),
        ..TablePlan::new(table, KeyStats::default(), KeyStats::default(), &chunks)
    };
    Ok((plan, chunks))
}

fn range(s: &KeyStats) -> Option<(i64, i64)> {
    s.min.zip(s.max)
}

/// Cuts `[lo, hi]`, where only `side` has rows, into differing segments of about `target` rows;
/// returns them and the rows the range holds.
async fn split<S: Stack>(
    side: &S,
    table: &TableSpec,
    lo: i64,
    hi: i64,
    target: u64,
) -> Result<(Vec<Segment>, u64)> {
    let count = side.count_range(table, lo, hi).await?;
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
        });
        left -= rows;
        start = cut + 1;
    }
    if left > 0 || out.is_empty() {
        out.push(Segment {
            min: start,
            max: hi,
            rows: left,
        });
    } else if let Some(last) = out.last_mut() {
        last.max = hi;
    }
    Ok((out, count))
}

/// Compares `[lo, hi]` (both sides have rows around it) by bin checksums, then refines the
/// differing bins; appends the differing segments (not necessarily in key order).
async fn compare<S: Stack>(
    pair: TablePair<'_, S>,
    lo: i64,
    hi: i64,
    rows_hint: u64,
    out: &mut Vec<Segment>,
) -> Result<(u64, u64)> {
    let mut todo = Vec::new();
    let rows = first_level(pair, (lo, hi), rows_hint, &mut todo, out).await?;
    refine(pair, todo, out).await?;
    Ok(rows)
}

/// The first level: bins over all of `[lo, hi]`. Differing bins go to `todo` (to refine) or,
/// when already small, to `out`. Returns the rows of `[lo, hi]` on each side.
async fn first_level<S: Stack>(
    pair: TablePair<'_, S>,
    (lo, hi): (i64, i64),
    rows_hint: u64,
    todo: &mut Vec<Segment>,
    out: &mut Vec<Segment>,
) -> Result<(u64, u64)> {
    let (source, dest, target) = (pair.source, pair.dest, pair.target);
    let span = hi as i128 - lo as i128 + 1;
    if span > i64::MAX as i128 {
        // (key - lo) must fit an i64 in both engines: halve the range first.
        let mid = ((lo as i128 + hi as i128) / 2) as i64;
        let (a, b) = Box::pin(first_level(pair, (lo, mid), rows_hint, todo, out)).await?;
        let (c, d) = Box::pin(first_level(pair, (mid + 1, hi), rows_hint, todo, out)).await?;
        return Ok((a + c, b + d));
    }
    let fine = FINE_BIN_ROWS
        .min(target)
        .max(rows_hint.div_ceil(MAX_BINS))
        .max(1);
    let bins_wanted = (rows_hint / fine).clamp(1, MAX_BINS) as i128;
    let width = ((span + bins_wanted - 1) / bins_wanted).max(1) as i64;
    let (a, b) = futures::try_join!(
        source.bins(pair.salted(), lo, hi, width),
        dest.bins(pair.salted(), lo, hi, width)
    )?;
    let rows = |bins: &[Bin]| bins.iter().map(|b| b.count).sum::<u64>();
    let totals = (rows(&a), rows(&b));
    for (n, x, y) in differing(a.iter().map(|b| (0, b)), b.iter().map(|b| (0, b))) {
        let start = lo as i128 + n.1 as i128 * width as i128;
        let end = (start + width as i128 - 1).min(hi as i128);
        let seg = Segment {
            min: start as i64,
            max: end as i64,
            rows: rows_of(x, y),
        };
        if seg.rows <= LEAF_ROWS || width == 1 {
            out.push(seg);
        } else {
            todo.push(seg);
        }
    }
    Ok(totals)
}

/// The larger side's row count of a bin pair.
fn rows_of(x: Option<&Bin>, y: Option<&Bin>) -> u64 {
    x.map_or(0, |b| b.count).max(y.map_or(0, |b| b.count))
}

/// Bins with the index of the range each belongs to, as [`Stack::bins_multi`] gives them.
type RangeBins = Vec<(usize, Bin)>;

/// The bins that differ between the two sides' [`RangeBins`].
fn differing_ranges<'a>(a: &'a RangeBins, b: &'a RangeBins) -> Vec<Difference<'a>> {
    differing(
        a.iter().map(|(i, b)| (*i, b)),
        b.iter().map(|(i, b)| (*i, b)),
    )
}

/// A differing bin pair: `((range index, bin), source bin, destination bin)`.
type Difference<'a> = ((usize, i64), Option<&'a Bin>, Option<&'a Bin>);

/// Merge-joins two bin lists ordered by `(range index, bin)` and yields the differing pairs
/// `((index, bin), source bin, destination bin)` (a bin missing on one side differs).
fn differing<'a>(
    a: impl Iterator<Item = (usize, &'a Bin)>,
    b: impl Iterator<Item = (usize, &'a Bin)>,
) -> Vec<Difference<'a>> {
    let mut a = a.peekable();
    let mut b = b.peekable();
    let mut out = Vec::new();
    loop {
        let (key, x, y) = match (a.peek().copied(), b.peek().copied()) {
            (Some((i, x)), Some((j, y))) => {
                let (kx, ky) = ((i, x.bin), (j, y.bin));
                if kx == ky {
                    a.next();
                    b.next();
                    (kx, Some(x), Some(y))
                } else if kx < ky {
                    a.next();
                    (kx, Some(x), None)
                } else {
                    b.next();
                    (ky, None, Some(y))
                }
            }
            (Some((i, x)), None) => {
                a.next();
                ((i, x.bin), Some(x), None)
            }
            (None, Some((j, y))) => {
                b.next();
                ((j, y.bin), None, Some(y))
            }
            (None, None) => break,
        };
        if x != y {
            out.push((key, x, y));
        }
    }
    out
}

/// Refines differing ranges level by level (one `bins_multi` query per side, level and batch)
/// until each is at most [`LEAF_ROWS`] rows or one key wide; appends them to `out`.
async fn refine<S: Stack>(
    pair: TablePair<'_, S>,
    mut todo: Vec<Segment>,
    out: &mut Vec<Segment>,
) -> Result<()> {
    let (table, target) = (pair.table, pair.target);
    let mut level = 0;
    while !todo.is_empty() {
        level += 1;
        let mut next = Vec::new();
        for batch in todo.chunks(REFINE_BATCH) {
            let specs: Vec<(i64, i64, i64)> = batch
                .iter()
                .map(|s| {
                    let span = (s.max as i128 - s.min as i128 + 1) as u64;
                    let fanout = s.rows.div_ceil(LEAF_ROWS / 2).clamp(2, MAX_FANOUT);
                    (s.min, s.max, span.div_ceil(fanout).max(1) as i64)
                })
                .collect();
            let (a, b) = pair.bins_of_both(&specs).await?;
            let diffs = differing_ranges(&a, &b);
            let mut k = 0;
            for (i, (seg, &(lo, hi, width))) in batch.iter().zip(&specs).enumerate() {
                let start_k = k;
                while k < diffs.len() && diffs[k].0.0 == i {
                    k += 1;
                }
                let mine = &diffs[start_k..k];
                let differing_rows: u64 = mine.iter().map(|d| rows_of(d.1, d.2)).sum();
                if mine.is_empty() {
                    // Equal now: the (writable) source changed between the two levels. Copying
                    // the range is harmless and keeps the plan's promise.
                    out.push(*seg);
                    continue;
                }
                if 2 * differing_rows > seg.rows && seg.rows <= target {
                    // Mostly different: refining further would read more than copying it.
                    out.push(*seg);
                    continue;
                }
                for (n, x, y) in mine {
                    let start = lo as i128 + n.1 as i128 * width as i128;
                    let end = (start + width as i128 - 1).min(hi as i128);
                    let sub = Segment {
                        min: start as i64,
                        max: end as i64,
                        rows: rows_of(*x, *y),
                    };
                    if sub.rows <= LEAF_ROWS || width == 1 {
                        out.push(sub);
                    } else {
                        next.push(sub);
                    }
                }
            }
        }
        tracing::debug!(table = %table.name, level, refined = todo.len(), next = next.len(), "refined differing ranges");
        todo = next;
    }
    Ok(())
}

/// Packs differing segments into chunks of at most `target` rows and
/// [`MAX_RANGES_PER_CHUNK`] ranges, in key order; adjacent segments become one range.
fn coalesce(table: &str, segments: &mut [Segment], target: u64) -> Vec<Chunk> {
    segments.sort_by_key(|s| s.min);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut open: Option<Chunk> = None;
    for seg in segments.iter() {
        if let Some(c) = open.as_mut() {
            let adjacent = c
                .ranges
                .last()
                .is_some_and(|r| r[1].checked_add(1) == Some(seg.min));
            if c.estimated_rows + seg.rows <= target
                && (adjacent || c.ranges.len() < MAX_RANGES_PER_CHUNK)
            {
                if adjacent {
                    c.ranges.last_mut().expect("not empty")[1] = seg.max;
                } else {
                    c.ranges.push([seg.min, seg.max]);
                }
                c.max = seg.max;
                c.estimated_rows += seg.rows;
                continue;
            }
        }
        chunks.extend(open.take());
        open = Some(Chunk {
            table: table.to_owned(),
            min: seg.min,
            max: seg.max,
            estimated_rows: seg.rows,
            ranges: vec![[seg.min, seg.max]],
            keys: Vec::new(),
            whole_table: false,
        });
    }
    chunks.extend(open);
    for c in &mut chunks {
        if c.ranges.len() == 1 {
            // One range: the chunk's own [min, max] says it (the manifest stays as before).
            c.ranges.clear();
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Relation;

    /// Each chunk's bounds, estimate and ranges, for comparing with the expected plan.
    fn outlines(chunks: &[Chunk]) -> Vec<(i64, i64, u64, Vec<[i64; 2]>)> {
        chunks
            .iter()
            .map(|c| (c.min, c.max, c.estimated_rows, c.ranges.clone()))
            .collect()
    }

    fn seg(min: i64, max: i64, rows: u64) -> Segment {
        Segment { min, max, rows }
    }

    #[test]
    fn coalesce_packs_ranges_joins_adjacent_ones_and_respects_the_target() {
        let mut segs = [
            seg(50, 59, 95),
            seg(0, 9, 10),
            seg(10, 19, 10),
            seg(30, 39, 10),
            seg(70, 79, 2),
            seg(80, 89, 1),
        ];
        // (30 + 95 > 100 starts a chunk; 80..89 joins 70..79, its neighbour)
        let c = coalesce("t", &mut segs, 100);
        assert_eq!(
            outlines(&c),
            [
                (0, 39, 30, vec![[0, 19], [30, 39]]),
                (50, 89, 98, vec![[50, 59], [70, 89]]),
            ]
        );
    }

    #[tokio::test]
    async fn unique_changed_keys_become_chunks_of_at_most_target_rows() {
        let table = TableSpec {
            name: "t".into(),
            relation: Relation {
                schema: String::new(),
                relname: "t".into(),
            },
            key: crate::model::KeyKind::Integer,
            key_columns: Vec::new(),
            range_key: "id".into(),
            key_is_unique: true,
            columns: vec!["id".into()],
            types: vec!["bigint".into()],
            parents: Vec::new(),
            primary_key: vec!["id".into()],
            conflict_keys: Vec::new(),
        };
        // A unique key needs no query: the stack is never asked (its file does not exist).
        let never = crate::sqlite::SqliteStack::new("/nonexistent/stepops.db");
        let (tp, chunks) = plan_changed_ranges(
            &never,
            &table,
            &[(1, 3), (10, 10), (20, 29), (40, 40)],
            15,
            12,
        )
        .await
        .unwrap();
        assert_eq!(tp.changed_keys, Some(15));
        assert_eq!(tp.estimated_rows, 15);
        assert_eq!(
            outlines(&chunks),
            [
                (1, 10, 4, vec![[1, 3], [10, 10]]),
                (20, 40, 11, vec![[20, 29], [40, 40]]),
            ]
        );
    }

    #[test]
    fn coalesce_caps_ranges_per_chunk() {
        let mut segs: Vec<_> = (0..2_500).map(|i| seg(i * 10, i * 10 + 1, 1)).collect();
        let c = coalesce("t", &mut segs, 1_000_000);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].ranges.len(), MAX_RANGES_PER_CHUNK);
        assert_eq!(c[2].ranges.len(), 500);
        assert_eq!(c.iter().map(|c| c.estimated_rows).sum::<u64>(), 2_500);
    }
}
