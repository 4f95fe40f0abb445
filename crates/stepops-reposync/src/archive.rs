//! Safe extraction of a repository zipball: the archive's one top folder is stripped, every
//! entry is checked before anything is extracted (no `..`, no absolute path, no backslash or
//! control character, no symlink pointing out of the tree), only the files the filter accepts
//! are written, into a temporary folder, hashed while they are written.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::definition::Filter;
use crate::digest::{Digests, Hasher};
use crate::error::{SyncError, local};

/// A file to sync: its path in the repository and where it is on disk.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// The path relative to the repository's root (`/`-separated); the key is prefix + this.
    pub rel: String,
    /// The extracted file.
    pub path: PathBuf,
    /// Its digests.
    pub digests: Digests,
}

/// What an archive held.
#[derive(Debug)]
pub struct Extracted {
    /// The files the filter accepted, sorted by path.
    pub files: Vec<LocalFile>,
    /// The commit, from the archive's comment (GitHub writes the full SHA there) or its top
    /// folder's name.
    pub commit: String,
    /// Symbolic links inside the tree, skipped (S3 has none).
    pub skipped_links: Vec<String>,
}

fn unsafe_entry(path: &str, reason: &str) -> SyncError {
    SyncError::UnsafeArchive {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Checks a path's segments: relative, no `.`/`..`/empty segment, no `\`, no control char.
fn check_rel(name: &str, rel: &str) -> Result<(), SyncError> {
    if rel.starts_with('/') || name.starts_with('/') {
        return Err(unsafe_entry(name, "absolute path"));
    }
    if name.contains('\\') || name.chars().any(char::is_control) {
        return Err(unsafe_entry(
            name,
            "backslash or control character in the name",
        ));
    }
    if name.len() > 2 && name.as_bytes()[1] == b':' {
        return Err(unsafe_entry(name, "absolute path (drive letter)"));
    }
    if rel.split('/').any(|s| s == ".." || s == ".") {
        return Err(unsafe_entry(
            name,
            "`..` or `.` segment: it would leave its folder",
        ));
    }
    if rel.split('/').any(str::is_empty) {
        return Err(unsafe_entry(name, "empty path segment"));
    }
    Ok(())
}

/// Resolves a symlink at `rel` to `target` within the tree; `None` when it leaves the tree.
fn resolve_link(rel: &str, target: &str) -> Option<String> {
    if target.starts_with('/') || target.contains('\\') {
        return None;
    }
    let mut parts: Vec<&str> = rel.split('/').collect();
    parts.pop();
    for seg in target.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// Extracts `archive` into `dir`: every entry is checked first; then the accepted files are
/// written and hashed. `max_bytes` bounds what is written (a zip bomb is refused).
pub fn extract(
    archive: &Path,
    dir: &Path,
    filter: &Filter,
    max_bytes: u64,
) -> Result<Extracted, SyncError> {
    let f = std::fs::File::open(archive).map_err(|e| local(archive.display(), e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(f))
        .map_err(|e| SyncError::CorruptArchive(e.to_string()))?;
    // Pass 1: check every entry; find the top folder.
    let mut top: Option<String> = None;
    let mut plan = Vec::new();
    let mut links = Vec::new();
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| SyncError::CorruptArchive(e.to_string()))?;
        let name = String::from_utf8(entry.name_raw().to_vec()).map_err(|_| {
            unsafe_entry(
                &String::from_utf8_lossy(entry.name_raw()),
                "the name is not UTF-8",
            )
        })?;
        check_rel(&name, &name)?;
        let (head, rest) = match name.split_once('/') {
            Some((h, r)) => (h.to_owned(), r.trim_end_matches('/').to_owned()),
            None if entry.is_dir() => (name.trim_end_matches('/').to_owned(), String::new()),
            None => return Err(unsafe_entry(&name, "not under the archive's top folder")),
        };
        match &top {
            None => top = Some(head),
            Some(t) if *t != head => {
                return Err(unsafe_entry(
                    &name,
                    "the archive has more than one top folder",
                ));
            }
            _ => {}
        }
        if entry.is_dir() || rest.is_empty() {
            continue;
        }
        if entry.is_symlink() {
            links.push((i, name, rest));
        } else {
            plan.push((i, rest));
        }
    }
    let top = top.ok_or_else(|| SyncError::CorruptArchive("the archive is empty".into()))?;
    let mut skipped_links = Vec::new();
    for (i, name, rel) in links {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| SyncError::CorruptArchive(e.to_string()))?;
        let mut target = String::new();
        entry
            .read_to_string(&mut target)
            .map_err(|e| SyncError::CorruptArchive(e.to_string()))?;
        if resolve_link(&rel, &target).is_none() {
            return Err(unsafe_entry(
                &name,
                "symbolic link pointing out of the tree",
            ));
        }
        skipped_links.push(rel);
    }
    // Pass 2: extract what the filter accepts.
    let mut written = 0u64;
    let mut files = Vec::new();
    for (i, rel) in plan {
        if !filter.accepts(&rel) {
            continue;
        }
        let mut entry = zip
            .by_index(i)
            .map_err(|e| SyncError::CorruptArchive(e.to_string()))?;
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| local(parent.display(), e))?;
        }
        let mut out = std::fs::File::create(&path).map_err(|e| local(path.display(), e))?;
        let mut h = Hasher::default();
        let mut buf = vec![0; 256 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| SyncError::CorruptArchive(format!("{rel}: {e}")))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > max_bytes {
                return Err(SyncError::ArchiveTooLarge { limit: max_bytes });
            }
            h.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| local(path.display(), e))?;
        }
        files.push(LocalFile {
            rel,
            path,
            digests: h.finish(),
        });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    let comment = String::from_utf8_lossy(zip.comment()).trim().to_owned();
    let commit = if comment.len() == 40 && comment.chars().all(|c| c.is_ascii_hexdigit()) {
        comment
    } else {
        top.rsplit('-').next().unwrap_or(&top).to_owned()
    };
    Ok(Extracted {
        files,
        commit,
        skipped_links,
    })
}

#[cfg(test)]
mod tests {
    use super::resolve_link;

    #[test]
    fn links_resolve_within_the_tree_only() {
        assert_eq!(resolve_link("a/b/l", "../c").as_deref(), Some("a/c"));
        assert_eq!(resolve_link("a/l", "x/y").as_deref(), Some("a/x/y"));
        assert_eq!(resolve_link("a/l", "../../etc/passwd"), None);
        assert_eq!(resolve_link("l", "/etc/passwd"), None);
    }
}
