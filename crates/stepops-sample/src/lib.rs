//! A realistic sample database for stepops: the same logical schema on PostgreSQL and SQLite,
//! filled with deterministic data whose values stress every encoder (Unicode of all kinds,
//! quotes, backslashes, control characters, empty and NULL blobs, NaN and infinities, -0.0,
//! huge numerics, JSON, uuids, arrays with NULLs), plus [`mutate`] for stale destinations.
//!
//! Tables (parents first): `users`, `projects` (→ users), `entities` (→ projects, and a tree
//! through `parent_id`), `acl` (→ entities, users; primary key `(entity_id, principal_id,
//! access)`, a child table whose range key is `entity_id`), `events` (sparse keys up to about
//! 10^15, → users). `--rows N` is the total, split 5% / 1% / 40% / 30% / 24%.
//!
//! On SQLite, timestamps are `YYYY-MM-DD HH:MM:SS.ffffff+00:00` text, numerics and uuids text,
//! arrays JSON text, booleans 0/1; a NaN REAL is stored by SQLite as NULL.

mod data;
mod dialect;
mod digest;
mod encode;
mod error;
mod load;
mod mutate;
mod rng;
mod schema;

pub use data::{Counts, TABLES, Val, columns};
pub use digest::{TableDigest, digest};
pub use error::{Result, SampleError};
pub use load::{Progress, SampleReport, SampleSpec, create_schema, rows, sample};
pub use mutate::{Fractions, MutateReport, TableChanges, mutate};
pub use stepops_error::{DatabaseUrl, redact};
