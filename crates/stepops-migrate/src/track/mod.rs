//! Change tracking: compare only what the source changed (PostgreSQL sources).
//!
//! Without it, every comparison (the plan, and the verification after the copies) checksums
//! every row of both sides: a re-sync after a few changes costs two full passes. With
//! `changeTracking: {slot: NAME}` in the config, stepops keeps a *logical replication slot* on
//! the source (plugin `test_decoding`, created on first use) and reads from it which rows the
//! source changed, without consuming anything until the destination is known to be equal:
//!
//! - Every comparison first takes a snapshot of the source (`pg_current_snapshot()`), then
//!   compares. Its result carries a [`TrackingState`]: the slot, that snapshot, and how far the
//!   slot may be advanced.
//! - A *baseline* is such a state with this promise: every source row that no transaction
//!   invisible to its snapshot has changed is equal on both sides, or lies in the chunks of the
//!   comparison that produced it (which are copied before the next comparison). The last
//!   comparison of a converged run is written to the destination table
//!   [`MARKER_TABLE`] (the *marker*); within a run, a plan's own state is the baseline of the
//!   next comparison (`verify`, or the next round's plan).
//! - A comparison with a baseline reads the slot's pending changes, keeps those of
//!   transactions the baseline's snapshot did not see, takes the range keys of the rows they
//!   touched (old and new keys; the destination's copy is looked up by primary key when the
//!   range key is not part of it), and checksums only those key ranges on both sides (then
//!   refines as a full plan does). A table without a baseline (first run, new in the config,
//!   truncated, or with more than [`MAX_TRACKED_KEYS`] changed rows) is compared in full.
//! - When a comparison finds nothing to copy (and it is not a dry run), its state becomes the
//!   marker, and the slot is advanced over the longest run of decoded transactions that the
//!   new snapshot sees, so the source stops keeping their WAL. A comparison whose baseline is
//!   an earlier plan of the run (all its chunks copied, so its promise holds for every row)
//!   first records that plan as the marker and advances the slot to it, so it decodes only
//!   what came after. A crash anywhere leaves an older
//!   marker and a slot that is not further: the next run re-reads more changes, never fewer.
//!
//! Assumptions, checked where they can be: the destination is written by stepops only (it is
//! the next stack, not yet live: a change made on the destination itself is not seen until a
//! full comparison, see `fullCheck`); the slot is used by one migration at a time (a marker whose
//! slot moved past it, for example a recreated slot, is not trusted: everything is compared).
//! Requirements on the source: `wal_level = logical`, a free replication slot, and a role with
//! the `REPLICATION` attribute (on Amazon RDS: `rds.logical_replication = 1` and
//! `rds_replication`). A slot keeps WAL on the source until stepops advances it: between runs
//! it grows with the source's write volume. `stepops migrate --tracking-status` shows how much,
//! `--stop-tracking` drops the slot and the marker.

pub mod decode;
mod pg;
mod snapshot;

pub use pg::{PLUGIN, SlotInfo};
pub use snapshot::{Snapshot, format_lsn, parse_lsn};

use crate::error::{MigrateError, Result};
use crate::model::{Plan, TableSpec};
use crate::plan::TablePair;
use crate::postgres::PgStack;
use crate::{PlanOptions, plan as planner};
use decode::{Change, Op, Value};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The destination table that holds the markers (one row per slot). Never migrated.
pub const MARKER_TABLE: &str = "sync_state";
pub use stepops_error::config::TrackingConfig;

/// A table with more changed rows than this since the baseline is compared in full (bounds
/// the memory of a comparison).
pub const MAX_TRACKED_KEYS: usize = 250_000;

/// Where a comparison stands in the source's change stream (see the module documentation).
/// Serialised into the plan's output and, once converged, into the destination's marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingState {
    /// The source's replication slot.
    pub slot: String,
    /// The source database's name.
    pub database: String,
    /// The source snapshot taken before the comparison (`xmin:xmax:xip…`).
    pub snapshot: String,
    /// The slot's position when the comparison read it.
    pub slot_lsn: String,
    /// How far the slot may be advanced once this comparison is the marker.
    pub advance_to: String,
    /// The tables compared.
    pub tables: Vec<String>,
}

/// What a slot and its marker look like now (`stepops migrate --tracking-status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackingStatus {
    /// The slot's name.
    pub slot: String,
    /// The slot on the source, if it exists.
    pub slot_lsn: Option<String>,
    /// WAL the source keeps for the slot, in bytes.
    pub retained_bytes: Option<i64>,
    /// The destination's marker, if any.
    pub marker: Option<TrackingState>,
    /// Whether the next comparison can use the marker (else it compares everything).
    pub usable: bool,
    /// Why not, when it cannot.
    pub reason: Option<String>,
}

/// Checks that `baseline` can stand for the slot's pending changes now: same slot and
/// database, and the slot has not moved past what the baseline allows (a slot that did, for
/// example one dropped and created again, may have lost changes).
fn usable(
    baseline: &TrackingState,
    slot: &str,
    database: &str,
    slot_pos: u64,
) -> Result<(), String> {
    if baseline.slot != slot {
        return Err(format!("it is for slot {}", baseline.slot));
    }
    if baseline.database != database {
        return Err(format!(
            "it was taken on database {}, the source is {database}",
            baseline.database
        ));
    }
    let limit = parse_lsn(&baseline.advance_to).map_err(|e| e.to_string())?;
    if slot_pos > limit {
        return Err(format!(
            "the slot is at {}, past {} where the marker left it (another process consumed it, or it was created again): changes may be lost",
            format_lsn(slot_pos),
            baseline.advance_to
        ));
    }
    Snapshot::parse(&baseline.snapshot).map_err(|e| e.to_string())?;
    Ok(())
}

/// What one table's changes since the baseline come to.
#[derive(Debug)]
enum TableChanges {
    /// Range keys touched, and rows whose destination copy must be looked up:
    /// `identity columns → their values, one row each`.
    Keys {
        keys: BTreeSet<i64>,
        lookups: BTreeMap<Vec<String>, Vec<Vec<String>>>,
    },
    /// Compare the whole table, for this reason.
    Full(String),
}

/// Gathers the decoded changes of the migrated tables.
struct Collector<'a> {
    tables: HashMap<&'a str, (&'a TableSpec, TableChanges)>,
}

impl<'a> Collector<'a> {
    /// `baseline_tables`: the tables the baseline compared (`None`: no baseline).
    fn new(specs: &'a [TableSpec], baseline_tables: Option<&[String]>) -> Self {
        let tables = specs
            .iter()
            .map(|spec| {
                let changes = match baseline_tables {
                    _ if spec.key != crate::model::KeyKind::Integer => {
                        TableChanges::Full("its key is not one integer column".into())
                    }
                    None => TableChanges::Full("no baseline yet".into()),
                    Some(list) if !list.contains(&spec.name) => {
                        TableChanges::Full("not in the baseline".into())
                    }
                    Some(_) => TableChanges::Keys {
                        keys: BTreeSet::new(),
                        lookups: BTreeMap::new(),
                    },
                };
                (spec.name.as_str(), (spec, changes))
            })
            .collect();
        Collector { tables }
    }

    fn add(&mut self, c: Change) {
        let name = stepops_error::names::display(&c.schema, &c.table);
        let Some((spec, changes)) = self.tables.get_mut(name.as_str()) else {
            return;
        };
        let TableChanges::Keys { keys, lookups } = changes else {
            return;
        };
        match touched(spec, &c, keys, lookups) {
            Ok(()) => {
                let rows = keys.len() + lookups.values().map(Vec::len).sum::<usize>();
                if rows > MAX_TRACKED_KEYS {
                    *changes =
                        TableChanges::Full(format!("more than {MAX_TRACKED_KEYS} rows changed"));
                }
            }
            Err(why) => *changes = TableChanges::Full(why),
        }
    }
}

/// Adds the range keys one change touched (or the rows to look up on the destination).
fn touched(
    spec: &TableSpec,
    c: &Change,
    keys: &mut BTreeSet<i64>,
    lookups: &mut BTreeMap<Vec<String>, Vec<Vec<String>>>,
) -> Result<(), String> {
    if c.op == Op::Truncate {
        return Err("the source truncated it".into());
    }
    if c.op == Op::Delete && c.old.is_empty() {
        return Err("rows were deleted without a replica identity".into());
    }
    if c.op != Op::Delete && c.new.is_empty() {
        return Err("a change without its new row".into());
    }
    let key_in_pk = spec.primary_key.contains(&spec.range_key);
    for (tuple, old) in [(&c.new, false), (&c.old, true)] {
        if tuple.is_empty() {
            continue;
        }
        let range_key = tuple.iter().find(|(n, _)| *n == spec.range_key);
        match range_key {
            Some((_, v)) => match v.as_i64() {
                Some(k) => {
                    keys.insert(k);
                }
                None => return Err("a range key that is NULL or not an integer".into()),
            },
            None if !old => return Err("a new row without its range key".into()),
            None => {}
        }
        // The destination may hold this row under another range key (the range key is not
        // part of the primary key, or the old identity does not print it): find it there.
        if !key_in_pk || range_key.is_none() {
            let identity: Vec<&(String, Value)> = if old {
                tuple.iter().collect()
            } else {
                spec.primary_key
                    .iter()
                    .filter_map(|p| tuple.iter().find(|(n, _)| n == p))
                    .collect()
            };
            if identity.is_empty() {
                if !old && spec.primary_key.is_empty() {
                    continue; // a new row of a table without a key: no older copy to find
                }
                return Err(
                    "a changed row without an identity to find its destination copy".into(),
                );
            }
            let mut names = Vec::new();
            let mut values = Vec::new();
            for (n, v) in identity {
                match v {
                    Value::Text(t) => {
                        names.push(n.clone());
                        values.push(t.clone());
                    }
                    _ => return Err("a row identity with a NULL value".into()),
                }
            }
            lookups.entry(names).or_default().push(values);
        }
    }
    Ok(())
}

/// Consecutive keys joined into inclusive ranges.
fn runs(keys: &BTreeSet<i64>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &k in keys {
        match out.last_mut() {
            Some(r) if r.1.checked_add(1) == Some(k) => r.1 = k,
            _ => out.push((k, k)),
        }
    }
    out
}

/// Plans with change tracking (see the module documentation).
pub(crate) async fn plan(
    source: &PgStack,
    dest: &PgStack,
    tables: &[TableSpec],
    config: &TrackingConfig,
    options: &PlanOptions,
    salt: &str,
) -> Result<Plan> {
    let name = config.slot.as_str();
    let started = std::time::Instant::now();
    let (database, _) = source.database_and_schema().await?;
    let mut slot = source.slot(name).await?;
    if slot.is_none() {
        if options.dry_run {
            tracing::info!(
                slot = name,
                "dry run: the change-tracking slot does not exist yet (a real run creates it); comparing every row"
            );
            let mut plan = full_plan(source, dest, tables, options, salt).await?;
            plan.tracking = None;
            return Ok(plan);
        }
        tracing::info!(
            slot = name,
            "creating the change-tracking slot on the source"
        );
        source.create_slot(name).await?;
        slot = source.slot(name).await?;
    }
    let slot = slot.ok_or_else(|| MigrateError::Transient {
        target: crate::stack::Stack::describe(source),
        reason: format!("the replication slot {name} disappeared right after it was created"),
    })?;
    if slot.database != database || slot.plugin != PLUGIN {
        return Err(MigrateError::InvalidInput(format!(
            "the replication slot {name} on the source belongs to database {:?} with plugin {:?}, not to {database:?} with {PLUGIN}: choose another changeTracking.slot",
            slot.database, slot.plugin
        )));
    }
    let mut slot_pos = parse_lsn(&slot.confirmed_flush_lsn)?;
    let baseline = if config.full_check {
        None
    } else {
        match &options.baseline {
            Some(b) => Some(b.clone()),
            None => dest.read_marker(name).await?,
        }
    };
    let baseline = baseline.and_then(|b| match usable(&b, name, &database, slot_pos) {
        Ok(()) => Some(b),
        Err(why) => {
            tracing::warn!(slot = name, reason = %why, "change-tracking baseline not usable: comparing every row");
            None
        }
    });
    if let Some(b) = baseline
        .as_ref()
        .filter(|_| options.baseline.is_some() && !options.dry_run)
    {
        // An earlier plan of this run, all its chunks copied: its promise (equal, or in its
        // chunks) now holds for every row, so it is a marker, and the slot can move past what
        // it saw. This comparison then decodes only what came after.
        commit(source, dest, b, "earlier plan's chunks copied").await?;
        slot_pos = slot_pos.max(parse_lsn(&b.advance_to)?);
    }
    // The snapshot comes after the slot exists: every transaction it does not see is decoded.
    let snapshot_text = source.current_snapshot().await?;
    let now = Snapshot::parse(&snapshot_text)?;
    // Every transaction the snapshot sees must be decodable now (flushed), or its changes
    // could be missed here and then skipped as already seen.
    source.flush_wal().await?;

    let base = baseline
        .as_ref()
        .map(|b| Snapshot::parse(&b.snapshot))
        .transpose()?;

    let mut collector = Collector::new(tables, baseline.as_ref().map(|b| b.tables.as_slice()));
    let mut advance_to = slot_pos;
    let mut prefix = true;
    let mut decoded = 0u64;
    source
        .peek_changes(name, |lsn, xid, data| {
            let xid = now.widen(xid);
            if data.starts_with("COMMIT") {
                if prefix {
                    if now.sees(xid) {
                        advance_to = advance_to.max(parse_lsn(lsn)?);
                    } else {
                        prefix = false;
                    }
                }
                return Ok(());
            }
            let Some(base) = &base else {
                return Ok(()); // no baseline: every table is compared in full anyway
            };
            if base.sees(xid) {
                return Ok(()); // already reflected in the baseline
            }
            let changes = decode::parse(data).map_err(|e| {
                MigrateError::Internal(format!(
                    "cannot read a change from the replication slot {name}: {}",
                    e.chars().take(120).collect::<String>()
                ))
            })?;
            for c in changes {
                decoded += 1;
                collector.add(c);
            }
            Ok(())
        })
        .await?;
    let peeked_ms = started.elapsed().as_millis() as u64;

    let mut out = Plan {
        round: options.round,
        tables: Vec::new(),
        chunks: Vec::new(),
        tracking: None,
        source_stamp: None,
    };
    // Tables with changed keys are compared two at a time (a few index probes each, on warm
    // sessions: more at once mostly waits for new connections); tables compared in full go
    // one after the other, as without tracking.
    let mut changed = Vec::new();
    let mut full = Vec::new();
    for spec in tables {
        match collector
            .tables
            .remove(spec.name.as_str())
            .map(|(_, c)| c)
            .expect("every table has an entry")
        {
            TableChanges::Full(why) => full.push((spec, why)),
            TableChanges::Keys { keys, lookups } => changed.push((spec, keys, lookups)),
        }
    }
    let chunk_rows = options.chunk_rows;
    // Since the marker, the destination has seen none of the changes: the changed rows are
    // copied. Since an earlier plan of this run, the copies may already have taken a change
    // (they read the source later): the changed rows are compared first.
    let in_run = options.baseline.is_some();
    let mut planned = Vec::new();
    let mut pending = changed.into_iter();
    let mut running = futures::stream::FuturesUnordered::new();
    loop {
        while running.len() < 2 {
            match pending.next() {
                Some((spec, keys, lookups)) => running.push(plan_changed(
                    source, dest, spec, keys, lookups, salt, chunk_rows, in_run,
                )),
                None => break,
            }
        }
        match running.next().await {
            Some(r) => planned.push(r?),
            None => break,
        }
    }
    for (spec, why) in full {
        tracing::debug!(table = %spec.name, reason = %why, "comparing every row");
        planned.push(
            crate::ordered::plan_any(TablePair::new(source, dest, spec, salt, chunk_rows)).await?,
        );
    }
    // Back to dependency order (parents first).
    let position = |name: &str| tables.iter().position(|t| t.name == name);
    planned.sort_by_key(|(tp, _)| position(&tp.table));
    for (tp, mut chunks) in planned {
        out.tables.push(tp);
        out.chunks.append(&mut chunks);
    }
    let state = TrackingState {
        slot: name.to_owned(),
        database,
        snapshot: snapshot_text,
        slot_lsn: format_lsn(slot_pos),
        advance_to: format_lsn(advance_to),
        tables: tables.iter().map(|t| t.name.clone()).collect(),
    };
    let compared_ms = started.elapsed().as_millis() as u64;
    if out.in_sync() && !options.dry_run {
        commit(source, dest, &state, "equal").await?;
    }
    tracing::debug!(
        slot = name,
        decoded,
        baseline = baseline.is_some(),
        chunks = out.chunks.len(),
        peeked_ms,
        compared_ms,
        total_ms = started.elapsed().as_millis() as u64,
        "tracked plan"
    );
    out.tracking = Some(state);
    Ok(out)
}

/// Plans one table from its changed keys (and the keys its looked-up rows have on the
/// destination). `compare`: checksum them first (else they are copied as they are).
#[allow(clippy::too_many_arguments)]
async fn plan_changed(
    source: &PgStack,
    dest: &PgStack,
    spec: &TableSpec,
    mut keys: BTreeSet<i64>,
    lookups: BTreeMap<Vec<String>, Vec<Vec<String>>>,
    salt: &str,
    chunk_rows: u64,
    compare: bool,
) -> Result<(crate::model::TablePlan, Vec<crate::model::Chunk>)> {
    for (columns, rows) in &lookups {
        keys.extend(dest.range_keys_of(spec, columns, rows).await?);
    }
    let ranges = runs(&keys);
    tracing::debug!(table = %spec.name, keys = keys.len(), ranges = ranges.len(), "the changed rows");
    if !compare {
        // The destination has seen none of these changes: copy the changed keys.
        return planner::plan_changed_ranges(source, spec, &ranges, keys.len() as u64, chunk_rows)
            .await;
    }
    let pair = TablePair::new(source, dest, spec, salt, chunk_rows);
    planner::plan_ranges(pair, &ranges, keys.len() as u64).await
}

/// A plan that compares every table in full (no tracking).
async fn full_plan(
    source: &PgStack,
    dest: &PgStack,
    tables: &[TableSpec],
    options: &PlanOptions,
    salt: &str,
) -> Result<Plan> {
    let mut plan = Plan {
        round: options.round,
        tables: Vec::new(),
        chunks: Vec::new(),
        tracking: None,
        source_stamp: None,
    };
    for spec in tables {
        let (tp, mut chunks) =
            crate::ordered::plan_any(TablePair::new(source, dest, spec, salt, options.chunk_rows))
                .await?;
        plan.tables.push(tp);
        plan.chunks.append(&mut chunks);
    }
    Ok(plan)
}

/// Records `state` as the destination's marker, then advances the slot to its `advance_to`.
async fn commit(source: &PgStack, dest: &PgStack, state: &TrackingState, why: &str) -> Result<()> {
    dest.write_marker(state).await?;
    let target = parse_lsn(&state.advance_to)?;
    if let Some(slot) = source.slot(&state.slot).await? {
        let at = parse_lsn(&slot.confirmed_flush_lsn)?;
        if target > at {
            source.advance_slot(&state.slot, &state.advance_to).await?;
        }
    }
    tracing::info!(slot = %state.slot, advanced_to = %state.advance_to, "{why}: change-tracking marker recorded");
    Ok(())
}

/// The slot and marker of `config.slot` (reads only).
pub(crate) async fn status(
    source: &PgStack,
    dest: &PgStack,
    config: &TrackingConfig,
) -> Result<TrackingStatus> {
    let (database, _) = source.database_and_schema().await?;
    let slot = source.slot(&config.slot).await?;
    let marker = dest.read_marker(&config.slot).await?;
    let reason = match (&slot, &marker) {
        (None, _) => {
            Some("the slot does not exist on the source (the next run creates it)".to_owned())
        }
        (_, None) => {
            Some("no marker on the destination yet (the next run compares every row)".to_owned())
        }
        (Some(s), Some(m)) => {
            let pos = parse_lsn(&s.confirmed_flush_lsn)?;
            usable(m, &config.slot, &database, pos).err()
        }
    };
    Ok(TrackingStatus {
        slot: config.slot.clone(),
        slot_lsn: slot.as_ref().map(|s| s.confirmed_flush_lsn.clone()),
        retained_bytes: slot.as_ref().map(|s| s.retained_bytes),
        usable: reason.is_none(),
        reason,
        marker,
    })
}

/// Drops the slot and deletes the marker; returns what existed.
pub(crate) async fn stop(
    source: &PgStack,
    dest: &PgStack,
    config: &TrackingConfig,
) -> Result<(bool, bool)> {
    let slot = source.slot(&config.slot).await?.is_some();
    if slot {
        source.drop_slot(&config.slot).await?;
    }
    let marker = dest.delete_marker(&config.slot).await?;
    Ok((slot, marker))
}

#[cfg(test)]
mod tests;
