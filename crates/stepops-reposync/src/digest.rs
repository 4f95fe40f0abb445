//! A local file's digests, computed in one streaming pass: SHA-256 (the manifest's content
//! hash and the upload's checksum), CRC64NVME (what current AWS tools upload with), MD5 (the
//! ETag of a plain single-part object), and on demand the multipart ETag for a part size.

use std::io::Read;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::Digest as _;

/// Digests of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lowercase hex.
    pub sha256_hex: String,
    /// SHA-256, base64 (S3's `x-amz-checksum-sha256`).
    pub sha256_b64: String,
    /// CRC64NVME, base64 of the big-endian value (S3's `x-amz-checksum-crc64nvme`).
    pub crc64nvme_b64: String,
    /// MD5, lowercase hex.
    pub md5_hex: String,
}

/// Streams bytes through every hash.
pub struct Hasher {
    size: u64,
    sha: sha2::Sha256,
    md5: md5::Md5,
    crc: crc_fast::Digest,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            size: 0,
            sha: sha2::Sha256::new(),
            md5: md5::Md5::new(),
            crc: crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme),
        }
    }
}

impl Hasher {
    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        self.sha.update(data);
        self.md5.update(data);
        self.crc.update(data);
    }

    /// The digests of everything added.
    pub fn finish(self) -> Digests {
        let sha = self.sha.finalize();
        Digests {
            size: self.size,
            sha256_hex: hex(&sha),
            sha256_b64: STANDARD.encode(sha),
            crc64nvme_b64: STANDARD.encode(self.crc.finalize().to_be_bytes()),
            md5_hex: hex(&self.md5.finalize()),
        }
    }
}

/// Digests of the file at `path`.
pub fn digest_file(path: &Path) -> std::io::Result<Digests> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::default();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// The ETag S3 gives a multipart upload of the file at `path` in parts of `part_size` bytes:
/// the MD5 of the parts' MD5s, then `-N` (N parts). Without quotes.
pub fn multipart_etag(path: &Path, part_size: u64) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut all = Vec::new();
    let mut parts = 0u64;
    let mut buf = vec![0; 256 * 1024];
    loop {
        let mut part = md5::Md5::new();
        let mut left = part_size;
        let mut read = 0u64;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            part.update(&buf[..n]);
            left -= n as u64;
            read += n as u64;
        }
        if read == 0 && parts > 0 {
            break;
        }
        all.extend_from_slice(&part.finalize());
        parts += 1;
        if left > 0 {
            break;
        }
    }
    Ok(format!("{}-{parts}", hex(&md5::Md5::digest(&all))))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, base64.
pub fn sha256_b64(bytes: &[u8]) -> String {
    STANDARD.encode(sha2::Sha256::digest(bytes))
}
