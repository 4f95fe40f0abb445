//! The optional migration configuration (YAML or JSON): which tables, their range keys, the
//! status table, change tracking, deferred indexes. The types live in `stepops-error`
//! ([`stepops_error::config`]), shared with validate-input, which deserializes the very same
//! types from an execution input; the engine knows them as [`Config`].

pub use stepops_error::config::{MigrationConfig as Config, TableConfig};
