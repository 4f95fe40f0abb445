//! Where archives, schemas and tables are: `s3://BUCKET/PREFIX` or a local folder. A folder
//! `/data/out` is the bucket `out` of a [`LocalFolderStore`] rooted at `/data`, so that both
//! go through the one [`ObjectStore`](stepops_store::ObjectStore) trait.

use std::path::{Path, PathBuf};

use stepops_store::{AnyStore, LocalFolderStore, S3Store};

use crate::error::RelzError;

/// A bucket and a key prefix (no leading or trailing `/`; empty for the whole bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The bucket (a folder's name for a local folder).
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    /// The local folder's parent, for a folder.
    pub local_root: Option<PathBuf>,
}

impl Location {
    /// `s3://BUCKET[/PREFIX]` or a folder (created when `create`).
    pub fn parse(text: &str, create: bool) -> Result<Self, RelzError> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(RelzError::InvalidArgument(format!(
                    "{text}: an S3 location is s3://BUCKET/PREFIX"
                )));
            }
            return Ok(Location {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
                local_root: None,
            });
        }
        if create {
            std::fs::create_dir_all(text).map_err(|e| {
                RelzError::InvalidArgument(format!("cannot create the folder {text}: {e}"))
            })?;
        }
        let path = Path::new(text).canonicalize().map_err(|e| {
            RelzError::InvalidArgument(format!(
                "{text} is neither s3://BUCKET/PREFIX nor an existing folder: {e}"
            ))
        })?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(RelzError::InvalidArgument(format!(
                "{text}: the root folder cannot hold archives or tables; name a folder inside it"
            )));
        };
        let name = name.to_string_lossy().into_owned();
        if name.starts_with('.') {
            return Err(RelzError::InvalidArgument(format!(
                "{text}: a folder whose name starts with `.` cannot be used; name another folder"
            )));
        }
        Ok(Location {
            bucket: name,
            prefix: String::new(),
            local_root: Some(parent.to_owned()),
        })
    }

    /// The store that holds this location: the folder's parent, or S3 through `s3`.
    pub fn store(&self, s3: impl FnOnce() -> S3Store) -> AnyStore {
        match &self.local_root {
            Some(root) => AnyStore::Local(LocalFolderStore::new(root)),
            None => AnyStore::S3(s3()),
        }
    }

    /// This location with `part` appended to its prefix.
    pub fn join(&self, part: &str) -> Location {
        Location {
            prefix: self.key(part.trim_matches('/')),
            ..self.clone()
        }
    }

    /// The key of `rel` under the prefix.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.prefix)
        }
    }

    /// `rel` under this location, for messages (`s3://…` or a path).
    pub fn describe(&self, rel: &str) -> String {
        match &self.local_root {
            Some(root) => root
                .join(&self.bucket)
                .join(self.key(rel))
                .display()
                .to_string(),
            None => format!("s3://{}/{}", self.bucket, self.key(rel)),
        }
    }
}
