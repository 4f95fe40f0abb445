//! Keeps an S3 prefix equal to a GitHub branch (`stepops repo-sync`, Lambda `repo-sync`).
//!
//! A [`Definition`] names the branch and the prefix. A run authenticates as a GitHub App
//! ([`GitHubApp`]: RS256 JWT → cached installation token), streams the branch's zipball to a
//! temporary file under a size limit and a timeout, extracts it safely ([`archive`]), compares
//! it with the prefix without trusting an ETag to be an MD5 (the [`Manifest`] object first,
//! then `HeadObject` checksums and the multipart ETag formula), uploads what differs with its
//! SHA-256 and `Content-Type`, deletes what is gone in batches of 1000 reporting every key's
//! error, and alerts through the pipeline's notify channels ([`alert`]). A dry run reports the
//! same plan and writes nothing. Users read `docs/repo-sync.md`.

pub mod alert;
pub mod archive;
pub mod bench;
pub mod content_type;
pub mod definition;
pub mod digest;
mod error;
pub mod github;
pub mod manifest;
mod secret;
pub mod service;
pub mod store;
mod sync;

pub use definition::{Definition, Filter, MANIFEST_NAME, Mode, parse_definitions};
pub use error::SyncError;
pub use github::{AppKey, GitHubApp};
pub use manifest::Manifest;
pub use secret::read_secret;
pub use store::{Body, PutRequest, S3Target, SyncTarget};
pub use sync::{SyncReport, compare_and_apply, run_sync};

/// Reads the app's private key for `def`: its `private_key_file`, or the value `secret` read
/// for `private_key_secret` by the caller (a PEM, or JSON `{"privateKey": "…"}`).
pub fn app_key(def: &Definition, secret: Option<&str>) -> Result<AppKey, SyncError> {
    let text = match (&def.private_key_file, secret) {
        (_, Some(s)) => {
            let t = s.trim();
            if t.starts_with('{') {
                serde_json::from_str::<serde_json::Value>(t)
                    .ok()
                    .and_then(|v| v.get("privateKey")?.as_str().map(str::to_owned))
                    .ok_or_else(|| {
                        SyncError::PrivateKey(
                            "the secret is JSON without a string `privateKey`".into(),
                        )
                    })?
            } else {
                t.to_owned()
            }
        }
        (Some(f), None) => std::fs::read_to_string(f)
            .map_err(|e| SyncError::PrivateKey(format!("cannot read {f}: {e}")))?,
        (None, None) => {
            return Err(SyncError::PrivateKey(
                "no key given: set private_key_secret or private_key_file".into(),
            ));
        }
    };
    AppKey::from_pem(&text)
}

/// An S3 client for `region` from the shared configuration, computing request checksums only
/// when an operation requires them (what non-AWS S3 endpoints accept; uploads carry their
/// SHA-256 explicitly).
pub fn s3_client(config: &aws_sdk_s3::config::Builder, region: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
    let conf = config
        .clone()
        .region(Region::new(region.to_owned()))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}
