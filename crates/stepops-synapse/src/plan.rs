//! Comparing two stacks, type by type, as the service's own client does: the types in
//! migration order, the id ranges outside the box both sides share (cut into ranges of about
//! `rowsPerRange` rows by the source's optimal ranges), and inside it salted batch checksums
//! in bins of `checksumBinWidth` ids, one fresh random salt per comparison. Ranges here are
//! inclusive `[lo, hi]`; the wire's `maximumId` is exclusive (`hi + 1`, see
//! [`crate::MAXIMUM_ID_EXCLUSIVE`]).

use std::collections::BTreeMap;

use futures::{FutureExt, StreamExt, TryStreamExt};
use rand::Rng;

use crate::client::SynapseClient;
use crate::config::SynapseConfig;
use crate::error::{Result, SynapseError};
use crate::protocol::{AdminRequest, AdminResponse, TypeCount};

/// Types compared at once.
const TYPES_AT_ONCE: usize = 4;

/// What differs in one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDiff {
    /// The type.
    pub type_name: String,
    /// Disjoint, ascending, inclusive id ranges to back up and restore.
    pub ranges: Vec<(i64, i64)>,
    /// Rows those ranges are expected to move.
    pub estimated_rows: u64,
}

/// The primary types to migrate, in migration order: the source's list, checked against the
/// destination's, filtered by `include`/`skip`.
///
/// Errors: `Stepops.SchemaMismatch` (a type on one side only), `Stepops.InvalidInput` (an
/// include/skip entry naming no type).
pub async fn selected_types(
    source: &SynapseClient,
    dest: &SynapseClient,
    config: &SynapseConfig,
) -> Result<Vec<String>> {
    let (s, d) = futures::try_join!(source.primary_type_names(), dest.primary_type_names())?;
    let missing: Vec<&String> = s.iter().filter(|t| !d.contains(t)).collect();
    if !missing.is_empty() {
        return Err(SynapseError::TypeMismatch(format!(
            "the destination {} lacks type(s) {missing:?} of the source {}: both stacks must run the same release (or skip those types in the config)",
            dest.describe(),
            source.describe()
        )));
    }
    for t in config.include.iter().chain(&config.skip) {
        if !s.contains(t) {
            return Err(SynapseError::InvalidInput(format!(
                "config names type {t:?}, which is not a primary type of {}; known: {}",
                source.describe(),
                s.join(", ")
            )));
        }
    }
    Ok(s.into_iter()
        .filter(|t| config.include.is_empty() || config.include.contains(t))
        .filter(|t| !config.skip.contains(t))
        .collect())
}

async fn counts(client: &SynapseClient, types: &[String]) -> Result<BTreeMap<String, TypeCount>> {
    let answer = client
        .run(&AdminRequest::TypeCounts {
            types: types.to_vec(),
        })
        .await?;
    let AdminResponse::TypeCounts { list } = answer else {
        return Err(unexpected(client, "type counts", &answer));
    };
    Ok(list.into_iter().map(|c| (c.type_name.clone(), c)).collect())
}

fn unexpected(client: &SynapseClient, what: &str, answer: &AdminResponse) -> SynapseError {
    SynapseError::Malformed {
        stack: client.describe().to_owned(),
        what: what.to_owned(),
        reason: format!("answered with another response type: {answer:?}"),
    }
}

/// A fresh random salt.
pub fn new_salt() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// Compares every type of `types` on both stacks; the types that differ, in `types` order.
pub async fn compare(
    source: &SynapseClient,
    dest: &SynapseClient,
    config: &SynapseConfig,
    types: &[String],
    rows_per_range: i64,
) -> Result<Vec<TypeDiff>> {
    if types.is_empty() {
        return Ok(Vec::new());
    }
    if config.full_table_checksum {
        require_read_only(source, dest).await?;
    }
    let (sc, dc) = futures::try_join!(counts(source, types), counts(dest, types))?;
    let salt = new_salt();
    let width = config.checksum_bin_width.unwrap_or(rows_per_range);
    let bounds = |m: &BTreeMap<String, TypeCount>, t: &str| {
        m.get(t).and_then(|c| Some((c.minid?, c.maxid?)))
    };
    // Owned inputs and boxed futures: the stream stays `Send` for the runner's tasks.
    let jobs: Vec<_> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (s, d, salt, t) = (bounds(&sc, t), bounds(&dc, t), salt.clone(), t.clone());
            let full = config.full_table_checksum;
            async move {
                compare_type(source, dest, &t, s, d, &salt, width, rows_per_range, full)
                    .await
                    .map(|diff| (i, diff))
            }
            .boxed()
        })
        .collect();
    let mut diffs: Vec<(usize, TypeDiff)> = futures::stream::iter(jobs)
        .buffer_unordered(TYPES_AT_ONCE)
        .try_filter(|(_, diff)| futures::future::ready(!diff.ranges.is_empty()))
        .try_collect()
        .await?;
    diffs.sort_by_key(|(i, _)| *i);
    Ok(diffs.into_iter().map(|(_, d)| d).collect())
}

#[allow(clippy::too_many_arguments)]
async fn compare_type(
    source: &SynapseClient,
    dest: &SynapseClient,
    type_name: &str,
    s: Option<(i64, i64)>,
    d: Option<(i64, i64)>,
    salt: &str,
    width: i64,
    rows_per_range: i64,
    full_table_checksum: bool,
) -> Result<TypeDiff> {
    let mut ranges = Vec::new();
    let mut estimated = 0u64;
    let (lo_all, hi_all) = match (s, d) {
        (None, None) => (0, -1),
        (Some(a), None) | (None, Some(a)) => a,
        (Some(a), Some(b)) => (a.0.min(b.0), a.1.max(b.1)),
    };
    // The box both sides share (empty when one side is empty or they do not overlap).
    let common = match (s, d) {
        (Some(a), Some(b)) if a.0.max(b.0) <= a.1.min(b.1) => Some((a.0.max(b.0), a.1.min(b.1))),
        _ => None,
    };
    let outside: Vec<(i64, i64)> = match common {
        None if lo_all <= hi_all => vec![(lo_all, hi_all)],
        None => vec![],
        Some((lo, hi)) => [(lo_all, lo - 1), (hi + 1, hi_all)]
            .into_iter()
            .filter(|(a, b)| a <= b)
            .collect(),
    };
    let mut pieces: Vec<(i64, i64)> = Vec::new();
    for (a, b) in outside {
        for r in optimal_ranges(source, type_name, a, b, rows_per_range).await? {
            estimated += rows_per_range as u64;
            pieces.push(r);
        }
    }
    if let Some((lo, hi)) = common {
        let (sb, db) = futures::try_join!(
            bins(source, type_name, salt, lo, hi, width),
            bins(dest, type_name, salt, lo, hi, width)
        )?;
        let numbers: std::collections::BTreeSet<i64> =
            sb.keys().chain(db.keys()).copied().collect();
        for b in numbers {
            let (x, y) = (sb.get(&b), db.get(&b));
            if x != y {
                let start = lo.saturating_add(b.saturating_mul(width));
                let end = start.saturating_add(width - 1).min(hi);
                estimated += x.map_or(0, |v| v.0).max(y.map_or(0, |v| v.0)) as u64;
                pieces.push((start, end));
            }
        }
    }
    if full_table_checksum && pieces.is_empty() && common.is_some() && {
        let (s, d) = futures::try_join!(
            type_checksum(source, type_name),
            type_checksum(dest, type_name)
        )?;
        s != d
    } {
        // Rows differ that the ids and etags do not show: copy the whole type.
        tracing::warn!(
            type_name,
            "full-table checksums differ while every batch checksum matches (rows changed \
             without a new etag): the whole type is copied"
        );
        for r in optimal_ranges(source, type_name, lo_all, hi_all, rows_per_range).await? {
            estimated += rows_per_range as u64;
            pieces.push(r);
        }
    }
    pieces.sort();
    ranges.extend(pieces);
    Ok(TypeDiff {
        type_name: type_name.to_owned(),
        ranges,
        estimated_rows: estimated,
    })
}

/// `[a, b]` cut at the source's optimal ranges' starts: a contiguous cover of `[a, b]` (so ids
/// only the destination holds are deleted too), whichever way the service reads `maximumId`.
async fn optimal_ranges(
    source: &SynapseClient,
    type_name: &str,
    a: i64,
    b: i64,
    rows: i64,
) -> Result<Vec<(i64, i64)>> {
    let answer = source
        .run(&AdminRequest::OptimalRange {
            migration_type: type_name.to_owned(),
            minimum_id: a,
            maximum_id: b.saturating_add(1),
            optimal_rows_per_range: rows,
        })
        .await?;
    let AdminResponse::OptimalRange { ranges } = answer else {
        return Err(unexpected(source, "optimal ranges", &answer));
    };
    let mut cuts: Vec<i64> = ranges
        .iter()
        .map(|r| r.minimum_id)
        .filter(|c| *c > a && *c <= b)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = a;
    for c in cuts {
        out.push((start, c - 1));
        start = c;
    }
    out.push((start, b));
    Ok(out)
}

/// Refuses a full-table comparison unless both stacks are READ_ONLY (the service refuses the
/// request on a READ_WRITE stack).
async fn require_read_only(source: &SynapseClient, dest: &SynapseClient) -> Result<()> {
    for (side, client) in [("source", source), ("destination", dest)] {
        let status = client.status().await?.status;
        if status != "READ_ONLY" {
            return Err(SynapseError::InvalidInput(format!(
                "config.synapse.fullTableChecksum needs both stacks READ_ONLY (the service \
                 refuses a full-table checksum otherwise), but the {side} {} is {status}: set \
                 it READ_ONLY for the cut-over (the destination: readOnlyDuringCopy), or leave \
                 fullTableChecksum out",
                client.describe()
            )));
        }
    }
    Ok(())
}

/// The full-table checksum of `type_name`.
async fn type_checksum(client: &SynapseClient, type_name: &str) -> Result<Option<String>> {
    let answer = client
        .run(&AdminRequest::TypeChecksum {
            migration_type: type_name.to_owned(),
        })
        .await?;
    let AdminResponse::TypeChecksum { checksum, .. } = answer else {
        return Err(unexpected(client, "full-table checksum", &answer));
    };
    Ok(checksum)
}

/// `bin → (count, checksum)` of `[lo, hi]` in bins of `width` ids.
async fn bins(
    client: &SynapseClient,
    type_name: &str,
    salt: &str,
    lo: i64,
    hi: i64,
    width: i64,
) -> Result<BTreeMap<i64, (i64, String)>> {
    let answer = client
        .run(&AdminRequest::BatchChecksum {
            migration_type: type_name.to_owned(),
            salt: salt.to_owned(),
            minimum_id: lo,
            maximum_id: hi.saturating_add(1),
            batch_size: width,
        })
        .await?;
    let AdminResponse::BatchChecksum { cheksums } = answer else {
        return Err(unexpected(client, "batch checksums", &answer));
    };
    Ok(cheksums
        .into_iter()
        .map(|c| (c.bin_number, (c.count, c.checksum)))
        .collect())
}
