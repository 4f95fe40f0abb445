//! [`StoreJournal`]: a chunk's journal in the object store (the manifest bucket), where a
//! resumable copy (the Synapse stack's) records each range's jobs and backup, one small JSON
//! object per range under the `journal.prefix` the copy Map gives
//! (`chunks/<execution>/round-<n>`): a retried or redriven chunk of the same execution finds
//! it again, whichever runner takes it.

use stepops_synapse::{Journal, RangeState, SynapseError};

use crate::store::{ObjectStore, StoreError};

/// A journal under `bucket`/`prefix` of `store` (clones share the store's connection).
#[derive(Clone)]
pub struct StoreJournal<O> {
    store: O,
    bucket: String,
    prefix: String,
}

impl<O: ObjectStore> StoreJournal<O> {
    /// The journal at `bucket`/`prefix`.
    pub fn new(store: O, bucket: &str, prefix: &str) -> Self {
        StoreJournal {
            store,
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }
}

impl<O: ObjectStore> Journal for StoreJournal<O> {
    async fn load(&self, key: &str) -> Result<Option<RangeState>, SynapseError> {
        match self.store.get(&self.bucket, &self.key(key)).await {
            Ok(body) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| SynapseError::Journal(format!("{key}: {e}"))),
            Err(StoreError::Missing { .. }) => Ok(None),
            Err(e) => Err(SynapseError::Journal(e.to_string())),
        }
    }

    async fn save(&self, key: &str, state: &RangeState) -> Result<(), SynapseError> {
        let body = serde_json::to_vec(state).expect("a range state serialises");
        self.store
            .put(&self.bucket, &self.key(key), body)
            .await
            .map_err(|e| SynapseError::Journal(e.to_string()))
    }
}
