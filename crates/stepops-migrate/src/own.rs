//! stepops' own state on a PostgreSQL destination (deferred index definitions, the change-
//! tracking marker) lives in the schema [`SCHEMA`], created by stepops and used only while
//! stepops' role owns it: a schema of that name that another role created is refused, so no
//! other writer can plant what stepops reads back (ownership, not membership: a superuser
//! does not adopt another role's schema either). The schema is never migrated.

use crate::error::{MigrateError, Result};
use crate::postgres::{PgStack, Session};
use crate::stack::{Stack, quote_ident};

/// The schema stepops keeps its own tables in.
pub const SCHEMA: &str = "stepops";

/// `stepops."name"`: one of stepops' own tables.
pub(crate) fn own_table(name: &str) -> String {
    format!("{}.{}", quote_ident(SCHEMA), quote_ident(name))
}

impl PgStack {
    /// Whether stepops' schema exists (for reads: absent means nothing recorded); an error if
    /// another role owns it.
    pub(crate) async fn own_schema_exists(&self, s: &Session) -> Result<bool> {
        let rows =
            s.0.query(
                "SELECT nspowner = current_user::regrole, pg_get_userbyid(nspowner)::text
                 FROM pg_namespace WHERE nspname = $1",
                &[&SCHEMA],
            )
            .await
            .map_err(|e| self.err(e))?;
        match rows.first() {
            None => Ok(false),
            Some(r) if r.get::<_, bool>(0) => Ok(true),
            Some(r) => Err(MigrateError::Unauthorized {
                target: self.describe(),
                reason: format!(
                    "the schema {SCHEMA} is owned by the role {}, not by stepops' role: stepops \
                     keeps its own state there only in a schema its role owns; drop that schema \
                     or give it to stepops' role (ALTER SCHEMA {SCHEMA} OWNER TO …)",
                    r.get::<_, String>(1)
                ),
            }),
        }
    }

    /// Creates stepops' schema if needed (then refuses it if another role owns it).
    pub(crate) async fn ensure_own_schema(&self, s: &Session) -> Result<()> {
        if self.own_schema_exists(s).await? {
            return Ok(());
        }
        s.0.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(SCHEMA)
        ))
        .await
        .map_err(|e| match self.err(e) {
            MigrateError::Unauthorized { target, reason } => MigrateError::Unauthorized {
                target,
                reason: format!(
                    "{reason}; stepops keeps its own state in the schema {SCHEMA}: grant \
                         CREATE on the database to its role, or create the schema owned by it"
                ),
            },
            other => other,
        })?;
        self.own_schema_exists(s).await.map(|_| ())
    }

    /// Whether stepops' table `name` exists in its schema.
    pub(crate) async fn own_table_exists(&self, s: &Session, name: &str) -> Result<bool> {
        if !self.own_schema_exists(s).await? {
            return Ok(false);
        }
        let exists: bool =
            s.0.query_one("SELECT to_regclass($1) IS NOT NULL", &[&own_table(name)])
                .await
                .map_err(|e| self.err(e))?
                .get(0);
        Ok(exists)
    }
}
