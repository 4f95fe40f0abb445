//! The manifest object under the prefix (`.stepops-repo-sync.json`): what the last sync wrote,
//! key → SHA-256, size and the ETag S3 gave it, and the commit it came from. One GET tells
//! what the prefix holds; an object whose listed ETag and size still equal the manifest's is
//! the one the manifest describes (ETags are compared for equality only, never taken as MD5s).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest's format version.
pub const MANIFEST_VERSION: u32 = 1;

/// One object the manifest knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The ETag S3 gave the object (opaque).
    pub etag: String,
}

/// What a sync wrote under its prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// `organization/repository@branch`.
    pub source: String,
    /// The commit the objects came from.
    pub commit: String,
    /// Key → entry.
    pub objects: BTreeMap<String, Entry>,
}

impl Manifest {
    /// Reads a manifest; a missing, unreadable or other-version one is empty (everything is
    /// then compared through `HeadObject`).
    pub fn parse(body: Option<&[u8]>) -> Manifest {
        body.and_then(|b| serde_json::from_slice::<Manifest>(b).ok())
            .filter(|m| m.version == MANIFEST_VERSION)
            .unwrap_or_default()
    }

    /// The JSON body.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serialises")
    }
}
