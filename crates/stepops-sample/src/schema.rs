//! The sample schema: one logical schema, spelled for PostgreSQL and for SQLite.

/// PostgreSQL tables without keys or constraints (loaded first, constrained after).
pub const PG_TABLES: &[(&str, &str)] = &[
    (
        "users",
        "CREATE TABLE users (id bigint NOT NULL, user_name text NOT NULL, email text, \
         display_name text, created_at timestamptz, is_admin boolean NOT NULL, \
         balance numeric(20,6), score double precision, avatar bytea, settings jsonb, \
         external_id uuid, tags text[])",
    ),
    (
        "projects",
        "CREATE TABLE projects (id bigint NOT NULL, owner_id bigint NOT NULL, name text NOT NULL, \
         description text, created_at timestamptz, budget numeric, public boolean NOT NULL)",
    ),
    (
        "entities",
        "CREATE TABLE entities (id bigint NOT NULL, project_id bigint NOT NULL, parent_id bigint, \
         name text NOT NULL, kind text NOT NULL, size_bytes bigint, content bytea, \
         annotations jsonb, modified_at timestamptz, version integer NOT NULL)",
    ),
    (
        "acl",
        "CREATE TABLE acl (entity_id bigint NOT NULL, principal_id bigint NOT NULL, \
         access text NOT NULL, granted_at timestamptz)",
    ),
    (
        "events",
        "CREATE TABLE events (id bigint NOT NULL, user_id bigint, kind text NOT NULL, \
         payload jsonb, at timestamptz, ratio real)",
    ),
];

/// Primary keys and unique constraints, one statement per table (independent of each other).
pub const PG_KEYS: &[&str] = &[
    "ALTER TABLE users ADD PRIMARY KEY (id), ADD CONSTRAINT users_user_name_key UNIQUE (user_name)",
    "ALTER TABLE projects ADD PRIMARY KEY (id)",
    "ALTER TABLE entities ADD PRIMARY KEY (id)",
    "ALTER TABLE acl ADD PRIMARY KEY (entity_id, principal_id, access)",
    "ALTER TABLE events ADD PRIMARY KEY (id)",
];

/// Foreign keys (deferrable, so a migration may defer them within a chunk's transaction) and
/// the indexes that back them.
pub const PG_FOREIGN_KEYS: &[&str] = &[
    "ALTER TABLE projects ADD CONSTRAINT projects_owner_fk FOREIGN KEY (owner_id) REFERENCES users(id) DEFERRABLE",
    "ALTER TABLE entities ADD CONSTRAINT entities_project_fk FOREIGN KEY (project_id) REFERENCES projects(id) DEFERRABLE",
    "ALTER TABLE entities ADD CONSTRAINT entities_parent_fk FOREIGN KEY (parent_id) REFERENCES entities(id) DEFERRABLE",
    "ALTER TABLE acl ADD CONSTRAINT acl_entity_fk FOREIGN KEY (entity_id) REFERENCES entities(id) DEFERRABLE",
    "ALTER TABLE acl ADD CONSTRAINT acl_principal_fk FOREIGN KEY (principal_id) REFERENCES users(id) DEFERRABLE",
    "ALTER TABLE events ADD CONSTRAINT events_user_fk FOREIGN KEY (user_id) REFERENCES users(id) DEFERRABLE",
    "CREATE INDEX entities_parent_idx ON entities (parent_id)",
    "CREATE INDEX entities_project_idx ON entities (project_id)",
    "CREATE INDEX projects_owner_idx ON projects (owner_id)",
    "CREATE INDEX acl_principal_idx ON acl (principal_id)",
    "CREATE INDEX events_user_idx ON events (user_id)",
];

/// The SQLite schema (INTEGER/TEXT/BLOB/REAL; timestamps, numerics, uuids as TEXT, arrays and
/// JSON as JSON TEXT). Foreign keys are declared; SQLite enforces them only with
/// `PRAGMA foreign_keys = ON`.
pub const SQLITE_SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, user_name TEXT NOT NULL UNIQUE, email TEXT,
  display_name TEXT, created_at TEXT, is_admin INTEGER NOT NULL, balance TEXT, score REAL,
  avatar BLOB, settings TEXT, external_id TEXT, tags TEXT);
CREATE TABLE projects (id INTEGER PRIMARY KEY, owner_id INTEGER NOT NULL REFERENCES users(id),
  name TEXT NOT NULL, description TEXT, created_at TEXT, budget TEXT, public INTEGER NOT NULL);
CREATE TABLE entities (id INTEGER PRIMARY KEY,
  project_id INTEGER NOT NULL REFERENCES projects(id),
  parent_id INTEGER REFERENCES entities(id), name TEXT NOT NULL, kind TEXT NOT NULL,
  size_bytes INTEGER, content BLOB, annotations TEXT, modified_at TEXT, version INTEGER NOT NULL);
CREATE INDEX entities_parent_idx ON entities (parent_id);
CREATE TABLE acl (entity_id INTEGER NOT NULL REFERENCES entities(id),
  principal_id INTEGER NOT NULL REFERENCES users(id), access TEXT NOT NULL, granted_at TEXT,
  PRIMARY KEY (entity_id, principal_id, access));
CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id),
  kind TEXT NOT NULL, payload TEXT, at TEXT, ratio REAL);
CREATE INDEX entities_project_idx ON entities (project_id);
CREATE INDEX projects_owner_idx ON projects (owner_id);
CREATE INDEX acl_principal_idx ON acl (principal_id);
CREATE INDEX events_user_idx ON events (user_id);
";

/// Drops the sample tables (children first); valid on both engines.
pub const DROP_ALL: &str = "DROP TABLE IF EXISTS events; DROP TABLE IF EXISTS acl; \
     DROP TABLE IF EXISTS entities; DROP TABLE IF EXISTS projects; DROP TABLE IF EXISTS users;";

/// The PostgreSQL type of each column (for casts from text parameters).
pub fn pg_type(table: &str, column: &str) -> &'static str {
    match (table, column) {
        (_, "id" | "owner_id" | "project_id" | "parent_id" | "entity_id" | "principal_id")
        | (_, "user_id" | "size_bytes") => "bigint",
        (_, "version") => "integer",
        (_, "created_at" | "modified_at" | "granted_at" | "at") => "timestamptz",
        (_, "is_admin" | "public") => "boolean",
        ("users", "balance") => "numeric",
        ("projects", "budget") => "numeric",
        (_, "score") => "double precision",
        (_, "ratio") => "real",
        (_, "avatar" | "content") => "bytea",
        (_, "settings" | "annotations" | "payload") => "jsonb",
        (_, "external_id") => "uuid",
        (_, "tags") => "text[]",
        _ => "text",
    }
}
