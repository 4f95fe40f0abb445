//! Which objects each record's last run wrote, so that reprocessing a record removes the files
//! it no longer writes: a record whose upload date or assessment moved leaves no stale partition
//! behind (its rows would otherwise be counted twice), and a table or quarantine record it no
//! longer has goes too.
//!
//! One small JSON object per record, `<output>/_stepops/records/<record id>.json`:
//! `{"keys": [...]}`, the keys written last. The order of a run makes a crash harmless: the new
//! files are written first, then the stale ones deleted, then the index replaced; a run stopped
//! before the index is replaced leaves the old index, and the next run deletes what it lists and
//! no longer writes. Two runs of the same record at the same time are not guarded against (the
//! pipeline runs one archive per record at a time).

use serde::{Deserialize, Serialize};
use stepops_store::{AnyStore, ObjectStore, StoreError};

use crate::error::RelzError;
use crate::location::Location;

/// The folder under the output that holds stepops' own bookkeeping (a leading `_`: query
/// engines that read the output skip it, as they skip `_quarantine`).
pub const RECORDS: &str = "_stepops/records";

#[derive(Debug, Default, Serialize, Deserialize)]
struct RecordIndex {
    keys: Vec<String>,
}

/// Deletes what `record_id`'s previous run wrote under `output` and this run did not
/// (`written`), then records `written`; returns how many objects it deleted.
pub async fn retire_stale(
    store: &AnyStore,
    output: &Location,
    record_id: &str,
    written: &[String],
) -> Result<usize, RelzError> {
    let index_key = output.key(&format!("{RECORDS}/{record_id}.json"));
    let before = match store.get(&output.bucket, &index_key).await {
        Ok(body) => serde_json::from_slice::<RecordIndex>(&body).map_err(|e| {
            RelzError::InvalidArgument(format!(
                "{}: not a record index stepops wrote ({e}); delete it and run again",
                output.describe(&format!("{RECORDS}/{record_id}.json"))
            ))
        })?,
        Err(StoreError::Missing { .. }) => RecordIndex::default(),
        Err(e) => return Err(e.into()),
    };
    let mut removed = 0;
    for stale in before.keys.iter().filter(|k| !written.contains(k)) {
        // Only keys under this output: an index is never a way to delete elsewhere.
        if !stale.starts_with(&output.key("")) || stale.contains("..") {
            continue;
        }
        store.delete(&output.bucket, stale).await?;
        removed += 1;
    }
    let index = RecordIndex {
        keys: written.to_vec(),
    };
    let body = serde_json::to_vec(&index).expect("a record index serialises");
    store.put(&output.bucket, &index_key, body).await?;
    Ok(removed)
}
