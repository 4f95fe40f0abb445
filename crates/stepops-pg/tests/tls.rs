//! Every sslmode against real PostgreSQL servers started here: one that accepts TCP over TLS
//! only (`hostssl`, a certificate for `localhost` signed by a CA made by the test), one without
//! TLS. What each mode accepts and refuses is what libpq documents.

use stepops_pg::{ConnectError, PgConnector, TlsProblem};
use stepops_testkit::{PgOptions, PgServer, TestCa};

struct Servers {
    tls: PgServer,
    plain: PgServer,
    ca_file: std::path::PathBuf,
    other_ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn servers() -> Servers {
    let ca = TestCa::new();
    let tls = PgServer::start_with(PgOptions {
        tls: Some(ca.server_tls(&["localhost"], true)),
        ..PgOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let plain = PgServer::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, TestCa::new().cert_pem()).unwrap();
    Servers {
        tls,
        plain,
        ca_file,
        other_ca_file,
        _dir: dir,
    }
}

/// `postgres://postgres@HOST:PORT/postgres?QUERY` (HOST `localhost` reaches 127.0.0.1 by
/// `hostaddr`, so that the name checked is `localhost` whatever the resolver says).
fn url(server: &PgServer, host: &str, query: &str) -> String {
    let addr = if host == "localhost" {
        "&hostaddr=127.0.0.1"
    } else {
        ""
    };
    format!(
        "postgres://postgres@{host}:{}/postgres?{query}{addr}",
        server.port()
    )
}

/// Whether the session is encrypted, as the server sees it.
async fn encrypted(url: &str) -> Result<bool, ConnectError> {
    let client = PgConnector::parse(url)?.connect().await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

fn tls_problem(r: Result<bool, ConnectError>) -> TlsProblem {
    match r {
        Err(ConnectError::Tls(p)) => p,
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sslmode_behaves_as_libpq_documents() {
    let s = servers();
    let ca = s.ca_file.display().to_string();
    let other = s.other_ca_file.display().to_string();

    // A TLS-only server: plaintext is refused with what to add.
    let e = encrypted(&url(&s.tls, "127.0.0.1", "sslmode=disable")).await;
    let msg = format!("{}", e.as_ref().unwrap_err());
    assert_eq!(tls_problem(e), TlsProblem::ServerRequiresTls);
    assert!(
        msg.contains("the server requires TLS: add sslmode=require"),
        "{msg}"
    );

    // allow (plaintext refused, then TLS), prefer (the default) and require: encrypted,
    // certificate not checked (the client does not know the CA).
    for q in ["sslmode=allow", "", "sslmode=prefer", "sslmode=require"] {
        let on = encrypted(&url(&s.tls, "127.0.0.1", q)).await;
        assert!(
            on.unwrap_or_else(|e| panic!("{q}: {e}")),
            "{q}: not encrypted"
        );
    }

    // verify-ca: the chain is checked, not the name (127.0.0.1 is not in the certificate).
    let q = format!("sslmode=verify-ca&sslrootcert={ca}");
    assert!(encrypted(&url(&s.tls, "127.0.0.1", &q)).await.unwrap());
    let q = format!("sslmode=verify-ca&sslrootcert={other}");
    let e = encrypted(&url(&s.tls, "127.0.0.1", &q)).await;
    assert_eq!(tls_problem(e), TlsProblem::UntrustedCertificate);

    // verify-full: the name must match too.
    let q = format!("sslmode=verify-full&sslrootcert={ca}");
    let e = encrypted(&url(&s.tls, "127.0.0.1", &q)).await;
    let msg = format!("{}", e.as_ref().unwrap_err());
    assert_eq!(tls_problem(e), TlsProblem::WrongHostName);
    assert!(msg.contains("verify-ca"), "{msg}");
    assert!(encrypted(&url(&s.tls, "localhost", &q)).await.unwrap());
    let q = format!("sslmode=verify-full&sslrootcert={other}");
    let e = encrypted(&url(&s.tls, "localhost", &q)).await;
    assert_eq!(tls_problem(e), TlsProblem::UntrustedCertificate);

    // require with a root file verifies the chain, as libpq does when a root file exists.
    let q = format!("sslmode=require&sslrootcert={other}");
    let e = encrypted(&url(&s.tls, "127.0.0.1", &q)).await;
    assert_eq!(tls_problem(e), TlsProblem::UntrustedCertificate);

    // A server without TLS: require and verify-* refuse it, prefer and allow fall back.
    let e = encrypted(&url(&s.plain, "127.0.0.1", "sslmode=require")).await;
    let msg = format!("{}", e.as_ref().unwrap_err());
    assert_eq!(tls_problem(e), TlsProblem::ServerWithoutTls);
    assert!(msg.contains("does not accept TLS"), "{msg}");
    let q = format!("sslmode=verify-full&sslrootcert={ca}");
    let e = encrypted(&url(&s.plain, "localhost", &q)).await;
    assert_eq!(tls_problem(e), TlsProblem::ServerWithoutTls);
    for q in ["", "sslmode=allow", "sslmode=disable"] {
        let on = encrypted(&url(&s.plain, "127.0.0.1", q)).await;
        assert!(
            !on.unwrap_or_else(|e| panic!("{q}: {e}")),
            "{q}: encrypted?"
        );
    }
}

#[test]
fn certificate_files_are_read_before_connecting() {
    let e = PgConnector::parse("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem")
        .unwrap_err();
    assert!(matches!(e, ConnectError::InvalidSettings(_)), "{e:?}");
    assert!(e.to_string().contains("/nonexistent.pem"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let e = PgConnector::parse(&format!(
        "postgres://h/db?sslmode=verify-ca&sslrootcert={}",
        empty.display()
    ))
    .unwrap_err();
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
}

#[test]
fn errors_never_repeat_the_url() {
    let e = PgConnector::parse("postgres://u:s3cret@h/db?sslmode=bogus").unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e = PgConnector::parse("postgres://u:s3cret@h:notaport/db").unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
}
