//! The TLS parameters of a PostgreSQL URL, read as libpq reads them (`sslmode`, `sslrootcert`,
//! `sslcert`, `sslkey`), and the URL without them for `tokio_postgres::Config`, which knows only
//! `sslmode` = disable | prefer | require.

use std::path::PathBuf;

use crate::ConnectError;

/// libpq's `sslmode`, with its meaning (PostgreSQL documentation, "SSL Support").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS (unverified) if the server refuses plaintext.
    Allow,
    /// TLS (unverified) if the server offers it, else plaintext. libpq's default.
    Prefer,
    /// TLS, certificate not verified (verified against `sslrootcert` when one is given).
    Require,
    /// TLS, certificate chain verified against the root certificates; host name not checked.
    VerifyCa,
    /// TLS, chain verified and the host name must match the certificate.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, ConnectError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ConnectError::InvalidSettings(format!(
                    "sslmode={other:?} is not a libpq sslmode: use disable, allow, prefer, \
                     require, verify-ca or verify-full"
                )));
            }
        })
    }

    /// The URL spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file (`sslrootcert=PATH`, or libpq's default `~/.postgresql/root.crt`).
    File(PathBuf),
    /// The platform's trust store (`sslrootcert=system`).
    System,
}

/// The TLS settings of one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParams {
    /// The mode (default `prefer`, or `verify-full` with `sslrootcert=system`).
    pub mode: SslMode,
    /// Roots to verify against: given explicitly, or libpq's default file for verify-ca/full.
    pub root_certs: Option<RootCerts>,
    /// A client certificate and its key (`sslcert`, `sslkey`), PEM files.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The URL's TLS parameters and the URL without them.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsParams), ConnectError> {
    split_url_in(url, std::env::var_os("HOME").map(PathBuf::from))
}

/// [`split_url`] with the home folder that holds libpq's default root file.
fn split_url_in(url: &str, home: Option<PathBuf>) -> Result<(String, TlsParams), ConnectError> {
    let url = url.trim();
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut kept = Vec::new();
    let (mut mode, mut root, mut cert, mut key) = (None, None, None, None);
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let value = || percent_decode(v);
        match percent_decode(k)?.as_str() {
            "sslmode" => mode = Some(SslMode::parse(&value()?)?),
            "sslrootcert" => root = Some(value()?),
            "sslcert" => cert = Some(value()?),
            "sslkey" => key = Some(value()?),
            _ => kept.push(pair),
        }
    }
    let system = root.as_deref() == Some("system");
    let mode = match (mode, system) {
        (Some(m), true) if m != SslMode::VerifyFull => {
            return Err(ConnectError::InvalidSettings(format!(
                "weak sslmode={} may not be used with sslrootcert=system: use sslmode=verify-full \
                 (the default with sslrootcert=system)",
                m.as_str()
            )));
        }
        (Some(m), _) => m,
        (None, true) => SslMode::VerifyFull,
        (None, false) => SslMode::Prefer,
    };
    let root_certs = match root {
        Some(r) if r == "system" => Some(RootCerts::System),
        Some(r) if !r.is_empty() => Some(RootCerts::File(PathBuf::from(r))),
        _ if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
            Some(RootCerts::File(default_root_file(home)?))
        }
        _ => None,
    };
    let client_cert = match (cert, key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        _ => {
            return Err(ConnectError::InvalidSettings(
                "sslcert and sslkey go together: give both (PEM files) or neither".into(),
            ));
        }
    };
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((
        rest,
        TlsParams {
            mode,
            root_certs,
            client_cert,
        },
    ))
}

/// libpq's default root file, `~/.postgresql/root.crt`.
fn default_root_file(home: Option<PathBuf>) -> Result<PathBuf, ConnectError> {
    let path = home
        .filter(|h| !h.as_os_str().is_empty())
        .map(|h| h.join(".postgresql/root.crt"))
        .filter(|p| p.is_file());
    path.ok_or_else(|| {
        ConnectError::InvalidSettings(
            "sslmode=verify-ca/verify-full needs root certificates: add sslrootcert=PATH (a PEM \
             file; for Amazon RDS the global bundle), or sslrootcert=system for the platform's \
             trust store (the default file ~/.postgresql/root.crt does not exist)"
                .into(),
        )
    })
}

/// Decodes `%XX` escapes (and `+` is kept: libpq does not treat it as a space). Any input,
/// valid or not, gives a value or an error, never a panic.
fn percent_decode(s: &str) -> Result<String, ConnectError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                let h = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(h, 16).ok()
            });
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => {
                    return Err(ConnectError::InvalidSettings(
                        "a URL parameter has a '%' not followed by two hexadecimal digits".into(),
                    ));
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        ConnectError::InvalidSettings("a URL parameter does not decode to UTF-8".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(url: &str) -> (String, TlsParams) {
        split_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn default_is_prefer_and_other_parameters_stay() {
        let (rest, p) = params("postgres://u@h:5432/db?application_name=x&connect_timeout=3");
        assert_eq!(
            rest,
            "postgres://u@h:5432/db?application_name=x&connect_timeout=3"
        );
        assert_eq!(p.mode, SslMode::Prefer);
        assert_eq!((p.root_certs, p.client_cert), (None, None));
    }

    #[test]
    fn every_mode_is_read_and_removed() {
        for m in ["disable", "allow", "prefer", "require"] {
            let (rest, p) = params(&format!("postgres://h/db?sslmode={m}&x=1"));
            assert_eq!(rest, "postgres://h/db?x=1");
            assert_eq!(p.mode.as_str(), m);
        }
        let (rest, p) = params("postgres://h/db?sslmode=verify-ca&sslrootcert=%2Ftmp%2Fca.pem");
        assert_eq!(rest, "postgres://h/db");
        assert_eq!(p.mode, SslMode::VerifyCa);
        assert_eq!(p.root_certs, Some(RootCerts::File("/tmp/ca.pem".into())));
    }

    #[test]
    fn system_roots_default_to_verify_full_and_refuse_weaker_modes() {
        let (_, p) = params("postgres://h/db?sslrootcert=system");
        assert_eq!(
            (p.mode, p.root_certs),
            (SslMode::VerifyFull, Some(RootCerts::System))
        );
        let e = split_url("postgres://h/db?sslrootcert=system&sslmode=require").unwrap_err();
        assert!(e.to_string().contains("weak sslmode=require"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_what_to_write() {
        let e = split_url("postgres://h/db?sslmode=verify").unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
        let e = split_url("postgres://h/db?sslcert=/a.pem").unwrap_err();
        assert!(e.to_string().contains("go together"), "{e}");
        let e = split_url("postgres://h/db?sslrootcert=%E").unwrap_err();
        assert!(e.to_string().contains("hexadecimal"), "{e}");
        // A multi-byte character after '%' is an error, not a panic.
        assert!(split_url("postgres://h/db?sslrootcert=%é1").is_err());
    }

    #[test]
    fn verify_modes_without_roots_need_a_file() {
        let home = tempfile::tempdir().unwrap();
        let url = "postgres://h/db?sslmode=verify-full";
        let e = split_url_in(url, Some(home.path().into())).unwrap_err();
        assert!(e.to_string().contains("sslrootcert=PATH"), "{e}");
        assert!(split_url_in(url, None).is_err());
        std::fs::create_dir_all(home.path().join(".postgresql")).unwrap();
        std::fs::write(home.path().join(".postgresql/root.crt"), "x").unwrap();
        let (_, p) = split_url_in(url, Some(home.path().into())).unwrap();
        assert_eq!(
            p.root_certs,
            Some(RootCerts::File(home.path().join(".postgresql/root.crt")))
        );
    }
}
