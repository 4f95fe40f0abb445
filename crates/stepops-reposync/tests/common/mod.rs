//! Test servers: moto's S3 server on 127.0.0.1 (a free port), a fake GitHub speaking the token
//! and zipball endpoints (it verifies the app JWT's RS256 signature, issuer, iat and exp), zips
//! built in memory, and a [`SyncTarget`] that counts every request it passes on.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use stepops_reposync::{AppKey, Definition};
use stepops_testkit::http::{HttpServer, Reply};

pub const KEY_PEM: &str = include_str!("../fixtures/test-app-key.pem");
pub const APP_ID: &str = "424242";
pub const TOKEN: &str = "ghs_testtoken_never_logged";

#[allow(unused_imports)] // not every test binary names the type
pub use stepops_testkit::moto::{Moto, moto};

/// The S3 configuration for moto (static test credentials).
pub fn s3_config(endpoint: &str) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
}

pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    stepops_reposync::s3_client(&s3_config(endpoint), "us-east-1")
}

/// What the fake GitHub serves.
#[derive(Debug, Clone)]
pub enum Serve {
    /// This zip.
    Zip(Vec<u8>),
    /// The token endpoint answers 401.
    Unauthorized,
}

/// The fake GitHub's state.
pub struct GitHub {
    pub url: String,
    pub serve: Arc<Mutex<Serve>>,
    pub token_requests: Arc<AtomicUsize>,
    pub downloads: Arc<AtomicUsize>,
}

fn verify_jwt(jwt: &str, public: &[u8]) -> Result<(), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWT".into());
    }
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    if header["alg"] != "RS256" {
        return Err("alg".into());
    }
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .map_err(|_| "bad signature".to_string())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    if claims["iss"] != APP_ID {
        return Err("issuer".into());
    }
    if !(now - 120..=now - 30).contains(&iat) || exp <= now || exp - iat > 600 {
        return Err(format!("iat/exp: now {now} iat {iat} exp {exp}"));
    }
    Ok(())
}

/// Starts the fake GitHub for org `acme`, repo `site`, branch `main`.
pub async fn github(serve: Serve) -> GitHub {
    let public = AppKey::from_pem(KEY_PEM).unwrap().public_key_der();
    let serve = Arc::new(Mutex::new(serve));
    let token_requests = Arc::new(AtomicUsize::new(0));
    let downloads = Arc::new(AtomicUsize::new(0));
    let (s, t, d) = (serve.clone(), token_requests.clone(), downloads.clone());
    let server = HttpServer::start(move |req| {
        let bearer = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        let path = req.path.as_str();
        let reply = |code: u16, body: Vec<u8>| Reply::new(code, "application/json", body);
        if req.method == "POST" && path == "/app/installations/77/access_tokens" {
            t.fetch_add(1, Ordering::SeqCst);
            if matches!(*s.lock().unwrap(), Serve::Unauthorized) {
                return reply(401, b"{\"message\":\"Bad credentials\"}".to_vec());
            }
            if let Err(e) = verify_jwt(bearer, &public) {
                return reply(401, format!("{{\"message\":\"{e}\"}}").into_bytes());
            }
            let exp = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
            return reply(
                201,
                serde_json::json!({"token": TOKEN, "expires_at": exp})
                    .to_string()
                    .into_bytes(),
            );
        }
        if req.method == "GET" && path.starts_with("/repos/acme/site/zipball/") {
            if bearer != TOKEN {
                return reply(401, vec![]);
            }
            if path != "/repos/acme/site/zipball/main" {
                return reply(404, b"{\"message\":\"Not Found\"}".to_vec());
            }
            d.fetch_add(1, Ordering::SeqCst);
            let Serve::Zip(z) = s.lock().unwrap().clone() else {
                return reply(500, vec![]);
            };
            return Reply::new(200, "application/zip", z);
        }
        reply(404, vec![])
    })
    .await;
    let url = server.url().to_owned();
    GitHub {
        url,
        serve,
        token_requests,
        downloads,
    }
}

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A GitHub-style zipball: `acme-site-0123456/` + each (path, content); the commit as comment.
pub fn zipball(files: &[(&str, &[u8])]) -> Vec<u8> {
    zip_raw(
        files
            .iter()
            .map(|(p, c)| (format!("acme-site-0123456/{p}"), c.to_vec(), false))
            .collect(),
    )
}

/// A zip of exactly these entries (name, content, is_symlink).
pub fn zip_raw(entries: Vec<(String, Vec<u8>, bool)>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content, link) in entries {
        if link {
            w.add_symlink(name, String::from_utf8(content).unwrap(), opts)
                .unwrap();
        } else {
            w.start_file(name, opts).unwrap();
            w.write_all(&content).unwrap();
        }
    }
    w.set_comment(COMMIT).unwrap();
    w.finish().unwrap().into_inner()
}

/// A definition for `acme/site@main` into `bucket`/`prefix` through the fake GitHub.
pub fn definition(github: &str, bucket: &str, prefix: &str, key_file: &Path) -> Definition {
    let yaml = format!(
        "organization: acme\nrepository: site\nbranch: main\napp_id: \"{APP_ID}\"\ninstallation_id: 77\nprivate_key_file: {}\nbucket: {bucket}\nregion: us-east-1\nprefix: {prefix}\ngithub_api: {github}\n",
        key_file.display()
    );
    serde_norway::from_str(&yaml).unwrap()
}
