//! The datasets' JSON Schemas, read from a folder or an S3 prefix: `<prefix>/<dataset>/v<N>.json`
//! for the dataset `<dataset>` at schema version `N` (the archive's `schemaVersion`), compiled
//! once (format assertions on: a `date-time` must be one) and kept while the process lives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use stepops_store::{AnyStore, ObjectStore, StoreError};

use crate::doc::{Doc, Tape};
use crate::error::RelzError;
use crate::location::Location;
use crate::types::{Declared, declared_types};

/// One validation failure: where in the document, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON Pointer into the document (`""` for the document itself).
    pub path: String,
    /// The validator's message.
    pub message: String,
}

/// A compiled schema and the column types it declares.
pub struct Compiled {
    validator: jsonschema::Validator<Tape>,
    /// The declared columns of the dataset's tables.
    pub declared: Declared,
    /// Where it was read.
    pub location: String,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Compiles `schema` (read at `location`) for the dataset `dataset`.
    pub fn new(dataset: &str, location: &str, schema: &Value) -> Result<Self, RelzError> {
        let validator = jsonschema::options_for::<Tape>()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| RelzError::BadSchema {
                schema: location.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Compiled {
            validator,
            declared: declared_types(dataset, schema),
            location: location.to_owned(),
        })
    }

    /// Every way `doc` fails the schema (none: valid), at most 20.
    pub fn violations(&self, doc: &Doc<'_>) -> Vec<Violation> {
        // Most documents are valid: the yes/no check is cheaper than collecting errors.
        if self.validator.is_valid(doc.root()) {
            return Vec::new();
        }
        self.validator
            .iter_errors(doc.root())
            .take(20)
            .map(|e| Violation {
                path: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect()
    }
}

/// Compiled schemas by dataset and version (`None`: there is no such schema).
type Cache = Arc<Mutex<HashMap<(String, u32), Option<Arc<Compiled>>>>>;

/// Where schemas come from: nowhere (types inferred, nothing validated), or a location.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    location: Option<(AnyStore, Location)>,
    cache: Cache,
}

impl Schemas {
    /// No schemas: every document is accepted and every type inferred.
    pub fn none() -> Self {
        Schemas::default()
    }

    /// Schemas under `location` (read through `store`).
    pub fn at(store: AnyStore, location: Location) -> Self {
        Schemas {
            location: Some((store, location)),
            cache: Arc::default(),
        }
    }

    /// Whether documents are validated (a schema location is configured).
    pub fn configured(&self) -> bool {
        self.location.is_some()
    }

    /// Where the schema of `dataset` version `version` is read.
    pub fn describe(&self, dataset: &str, version: u32) -> String {
        match &self.location {
            Some((_, loc)) => loc.describe(&format!("{dataset}/v{version}.json")),
            None => "(no schemas configured)".into(),
        }
    }

    /// The schema of `dataset` at `version`; `None` when there is none (an unknown dataset)
    /// or no schemas are configured.
    pub async fn get(
        &self,
        dataset: &str,
        version: u32,
    ) -> Result<Option<Arc<Compiled>>, RelzError> {
        let Some((store, loc)) = &self.location else {
            return Ok(None);
        };
        let id = (dataset.to_owned(), version);
        if let Some(hit) = self.cache.lock().expect("schema cache").get(&id) {
            return Ok(hit.clone());
        }
        let key = loc.key(&format!("{dataset}/v{version}.json"));
        let where_ = self.describe(dataset, version);
        let compiled = match store.get(&loc.bucket, &key).await {
            Ok(body) => {
                let schema: Value =
                    serde_json::from_slice(&body).map_err(|e| RelzError::BadSchema {
                        schema: where_.clone(),
                        reason: format!("not JSON: {e}"),
                    })?;
                Some(Arc::new(Compiled::new(dataset, &where_, &schema)?))
            }
            Err(StoreError::Missing { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        self.cache
            .lock()
            .expect("schema cache")
            .insert(id, compiled.clone());
        Ok(compiled)
    }
}
