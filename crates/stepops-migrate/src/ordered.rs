//! Planning the tables whose key is not one integer column, and those without a key.
//!
//! **Ordered keys** (uuid, text, numeric, dates, composite keys: [`KeyKind::Ordered`]): keys
//! cannot be divided arithmetically, so the table is cut at key values read from the source:
//! the key of every `n`-th row in key order ([`Stack::key_cuts`]). Both sides checksum the
//! bins between consecutive cuts in one scan each ([`Stack::key_bins`]); the cuts partition the
//! whole key space, so a destination-only key falls in some bin and is seen. A differing bin
//! that one side does not hold at all is copied whole (a span of keys); otherwise both sides
//! list the bin's `(key, row hash)` pairs ([`Stack::key_rows`]) and exactly the keys that differ
//! are copied (points). A destination that is empty is loaded in spans of `target` rows
//! without any comparison. Chunks stay under `target` rows, [`MAX_RANGES_PER_CHUNK`] ranges and
//! [`MAX_CHUNK_KEY_BYTES`] of key text, so a manifest line (a Step Functions item) stays far
//! below the 256 KiB payload limit however long the keys are.
//!
//! **No key** ([`KeyKind::Whole`]): the table's row count and order-independent checksum are
//! compared ([`Stack::table_sum`]); when they differ the table is one chunk, copied whole.

use crate::error::Result;
use crate::model::{Bin, Chunk, KeyKind, KeyRange, KeyStats, KeyValue, TablePlan, TableSpec};
use crate::plan::{FINE_BIN_ROWS, MAX_BINS, MAX_RANGES_PER_CHUNK, TablePair};
use crate::stack::Stack;
use std::collections::HashMap;

/// At most this many bytes of key text in one chunk.
pub const MAX_CHUNK_KEY_BYTES: usize = 64 * 1024;
/// Rows listed per refinement query and side (bounds the pairs held in memory).
pub const REFINE_ROWS: u64 = 200_000;

/// A differing key range with the rows it holds (the larger side's count).
struct Segment {
    range: KeyRange,
    rows: u64,
}

/// Plans a table without a key: one whole-table chunk when the two sides differ.
pub async fn plan_whole<S: Stack>(pair: TablePair<'_, S>) -> Result<(TablePlan, Vec<Chunk>)> {
    let (source, dest, table) = (pair.source, pair.dest, pair.table);
    let ((sc, ss), (dc, ds)) = futures::try_join!(
        source.table_sum(pair.salted()),
        dest.table_sum(pair.salted())
    )?;
    let chunks = if sc == dc && ss == ds {
        Vec::new()
    } else {
        vec![Chunk {
            table: table.name.clone(),
            min: 0,
            max: 0,
            estimated_rows: sc.max(dc),
            ranges: Vec::new(),
            keys: Vec::new(),
            whole_table: true,
        }]
    };
    Ok((table_plan(table, sc, dc, &chunks), chunks))
}

/// Plans a table with an ordered (non-integer) key.
pub async fn plan_ordered<S: Stack>(pair: TablePair<'_, S>) -> Result<(TablePlan, Vec<Chunk>)> {
    let (source, dest, table, target) = (pair.source, pair.dest, pair.table, pair.target);
    let (sc, dc) = futures::try_join!(source.row_count(table), dest.row_count(table))?;
    let mut segments = Vec::new();
    if sc == 0 && dc > 0 {
        // Everything goes: one span over all keys deletes the destination's rows.
        segments.push(Segment {
            range: KeyRange::span(None, None),
            rows: dc,
        });
    } else if dc == 0 && sc > 0 {
        // A load: spans of `target` source rows, nothing to compare.
        let cuts = source.key_cuts(table, target).await?;
        segments.extend(spans(&cuts).into_iter().map(|range| Segment {
            range,
            rows: target.min(sc),
        }));
    } else if sc > 0 {
        compare(pair, sc.max(dc), &mut segments).await?;
    }
    let chunks = pack(&table.name, segments, target);
    Ok((table_plan(table, sc, dc, &chunks), chunks))
}

/// The spans between consecutive cuts, from below the first to above the last.
fn spans(cuts: &[KeyValue]) -> Vec<KeyRange> {
    (0..=cuts.len()).map(|b| bin_span(cuts, b as i64)).collect()
}

/// The keys of bin `b` of [`Stack::key_bins`].
fn bin_span(cuts: &[KeyValue], b: i64) -> KeyRange {
    let b = b as usize;
    KeyRange::span(
        b.checked_sub(1).map(|i| cuts[i].clone()),
        cuts.get(b).cloned(),
    )
}

/// Compares both sides bin by bin and appends the differing ranges.
async fn compare<S: Stack>(
    pair: TablePair<'_, S>,
    rows_hint: u64,
    out: &mut Vec<Segment>,
) -> Result<()> {
    let (source, dest, table, target) = (pair.source, pair.dest, pair.table, pair.target);
    let fine = FINE_BIN_ROWS
        .min(target)
        .max(rows_hint.div_ceil(MAX_BINS))
        .max(1);
    let cuts = source.key_cuts(table, fine).await?;
    let (a, b) = futures::try_join!(
        source.key_bins(pair.salted(), &cuts),
        dest.key_bins(pair.salted(), &cuts)
    )?;
    // Differing bins: held by one side only (copied whole) or by both (refined).
    let mut refine: Vec<(i64, u64)> = Vec::new();
    for (bin, x, y) in differing(&a, &b) {
        match (x, y) {
            (Some(x), Some(y)) => refine.push((bin, x.count.max(y.count))),
            (x, y) => out.push(Segment {
                range: bin_span(&cuts, bin),
                rows: x.or(y).map_or(0, |b| b.count),
            }),
        }
    }
    // Refine in batches of about REFINE_ROWS rows: list the bins' rows on both sides.
    let mut batch: Vec<(i64, u64)> = Vec::new();
    let mut rows = 0;
    for (i, item) in refine.iter().enumerate() {
        batch.push(*item);
        rows += item.1;
        if rows >= REFINE_ROWS || i + 1 == refine.len() {
            refine_bins(pair, &cuts, &batch, out).await?;
            batch.clear();
            rows = 0;
        }
    }
    tracing::debug!(table = %table.name, bins = a.len().max(b.len()), refined = refine.len(), "compared by key bins");
    Ok(())
}

/// The bins whose count or checksum differ, as `(bin, source bin, destination bin)`.
fn differing<'a>(a: &'a [Bin], b: &'a [Bin]) -> Vec<(i64, Option<&'a Bin>, Option<&'a Bin>)> {
    let mut by_bin: std::collections::BTreeMap<i64, (Option<&Bin>, Option<&Bin>)> =
        Default::default();
    for x in a {
        by_bin.entry(x.bin).or_default().0 = Some(x);
    }
    for y in b {
        by_bin.entry(y.bin).or_default().1 = Some(y);
    }
    by_bin
        .into_iter()
        .filter(|(_, (x, y))| x != y)
        .map(|(bin, (x, y))| (bin, x, y))
        .collect()
}

/// Lists the rows of differing bins on both sides and appends the keys that differ (or the
/// whole bin when most of it differs).
async fn refine_bins<S: Stack>(
    pair: TablePair<'_, S>,
    cuts: &[KeyValue],
    bins: &[(i64, u64)],
    out: &mut Vec<Segment>,
) -> Result<()> {
    let numbers: Vec<i64> = bins.iter().map(|b| b.0).collect();
    let (a, b) = futures::try_join!(
        pair.source.key_rows(pair.salted(), cuts, &numbers),
        pair.dest.key_rows(pair.salted(), cuts, &numbers)
    )?;
    // Per bin, per key: the sorted row hashes of each side (a non-unique key holds several).
    type Side = HashMap<KeyValue, Vec<i64>>;
    let mut per_bin: HashMap<i64, [Side; 2]> = HashMap::new();
    for (side, rows) in [a, b].into_iter().enumerate() {
        for (bin, key, hash) in rows {
            per_bin.entry(bin).or_default()[side]
                .entry(key)
                .or_default()
                .push(hash);
        }
    }
    for &(bin, rows) in bins {
        let Some([mut x, mut y]) = per_bin.remove(&bin) else {
            // Both sides lost the bin's rows since the bins were read: nothing left to copy.
            continue;
        };
        let mut keys: Vec<(KeyValue, u64)> = Vec::new();
        for (key, mut hashes) in x.drain() {
            hashes.sort_unstable();
            let other = y.remove(&key).map(|mut h| {
                h.sort_unstable();
                h
            });
            if other.as_ref() != Some(&hashes) {
                let n = hashes.len().max(other.map_or(0, |h| h.len())) as u64;
                keys.push((key, n));
            }
        }
        keys.extend(y.into_iter().map(|(key, h)| (key, h.len() as u64)));
        if keys.is_empty() {
            // Equal now (the source changed between the two reads): copying the bin keeps
            // the plan's promise and is harmless.
            out.push(Segment {
                range: bin_span(cuts, bin),
                rows,
            });
        } else if 2 * keys.len() as u64 > rows {
            out.push(Segment {
                range: bin_span(cuts, bin),
                rows,
            });
        } else {
            keys.sort();
            out.extend(keys.into_iter().map(|(key, n)| Segment {
                range: KeyRange::point(key),
                rows: n,
            }));
        }
    }
    Ok(())
}

/// Packs segments, in order, into chunks of at most `target` rows, [`MAX_RANGES_PER_CHUNK`]
/// ranges and [`MAX_CHUNK_KEY_BYTES`] of key text.
fn pack(table: &str, segments: Vec<Segment>, target: u64) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut bytes = 0;
    for seg in segments {
        let size: usize = seg
            .range
            .values()
            .map(|k| k.0.iter().map(|p| p.len() + 4).sum::<usize>())
            .sum();
        let fits = chunks.last().is_some_and(|c| {
            c.estimated_rows + seg.rows <= target
                && c.keys.len() < MAX_RANGES_PER_CHUNK
                && bytes + size <= MAX_CHUNK_KEY_BYTES
        });
        if fits {
            let c = chunks.last_mut().expect("checked");
            c.estimated_rows += seg.rows;
            c.keys.push(seg.range);
            bytes += size;
        } else {
            chunks.push(Chunk {
                table: table.to_owned(),
                min: 0,
                max: 0,
                estimated_rows: seg.rows,
                ranges: Vec::new(),
                keys: vec![seg.range],
                whole_table: false,
            });
            bytes = size;
        }
    }
    chunks
}

fn table_plan(table: &TableSpec, sc: u64, dc: u64, chunks: &[Chunk]) -> TablePlan {
    let stats = |count| KeyStats {
        min: None,
        max: None,
        count,
    };
    TablePlan::new(table, stats(sc), stats(dc), chunks)
}

/// Plans any table: integer keys by [`crate::plan::plan_table`], the others here.
pub async fn plan_any<S: Stack>(pair: TablePair<'_, S>) -> Result<(TablePlan, Vec<Chunk>)> {
    match pair.table.key {
        KeyKind::Integer => crate::plan::plan_table(pair).await,
        KeyKind::Ordered => plan_ordered(pair).await,
        KeyKind::Whole => plan_whole(pair).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> KeyValue {
        KeyValue(vec![s.to_owned()])
    }

    #[test]
    fn spans_cover_every_key() {
        let s = spans(&[key("b"), key("d")]);
        assert_eq!(
            s,
            [
                KeyRange::span(None, Some(key("b"))),
                KeyRange::span(Some(key("b")), Some(key("d"))),
                KeyRange::span(Some(key("d")), None),
            ]
        );
    }

    #[test]
    fn pack_bounds_rows_ranges_and_key_bytes() {
        let long = "x".repeat(10_000);
        let segs = (0..20)
            .map(|i| Segment {
                range: KeyRange::point(KeyValue(vec![format!("{long}{i}")])),
                rows: 1,
            })
            .collect();
        let chunks = pack("t", segs, 1_000);
        assert!(chunks.len() >= 4, "{}", chunks.len());
        for c in &chunks {
            let line = serde_json::to_string(c).unwrap();
            assert!(line.len() <= MAX_CHUNK_KEY_BYTES + 1_000, "{}", line.len());
        }
        assert_eq!(chunks.iter().map(|c| c.keys.len()).sum::<usize>(), 20);
        let segs = (0..10)
            .map(|i| Segment {
                range: KeyRange::point(key(&i.to_string())),
                rows: 30,
            })
            .collect();
        let chunks = pack("t", segs, 100);
        assert_eq!(
            chunks.iter().map(|c| c.estimated_rows).collect::<Vec<_>>(),
            [90, 90, 90, 30]
        );
    }

    #[test]
    fn chunk_keys_read_back_from_the_manifest() {
        let c = Chunk {
            table: "app.\"Users\"".into(),
            min: 0,
            max: 0,
            estimated_rows: 3,
            ranges: Vec::new(),
            keys: vec![
                KeyRange::point(KeyValue(vec!["a".into(), "1".into()])),
                KeyRange::span(Some(key("b")), None),
            ],
            whole_table: false,
        };
        let line = serde_json::to_string(&c).unwrap();
        assert_eq!(
            line,
            r#"{"table":"app.\"Users\"","min":0,"max":0,"estimatedRows":3,"keys":[{"key":["a","1"]},{"from":"b"}]}"#
        );
        let back: Chunk = serde_json::from_str(&line).unwrap();
        assert_eq!(back, c);
    }
}
