//! The harness against a real PostgreSQL: start, TCP URLs, databases, roles, passwords, stop.

use std::process::Command;

use stepops_testkit::{PgOptions, PgServer, pg_bindir};

/// Connects over TCP with `psql URL` (as a client would) and runs `sql`.
fn psql_url(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(pg_bindir().unwrap().join("psql"))
        .args(["-X", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1"])
        .arg(url)
        .args(["-c", sql])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn starts_serves_tcp_and_stops_on_drop() {
    let pg = PgServer::start().expect("start PostgreSQL");
    let port = pg.port();
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    );
    assert_eq!(psql_url(&pg.url(), "SELECT 40 + 2").unwrap(), "42");
    // The settings we promised are in force.
    assert_eq!(psql_url(&pg.url(), "SHOW fsync").unwrap(), "off");
    assert_eq!(pg.psql("postgres", "SHOW server_encoding").unwrap(), "UTF8");

    let dir = pg.data_dir();
    assert!(dir.is_dir());
    drop(pg);
    assert!(!dir.exists(), "data directory removed on drop");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server stopped on drop"
    );
}

#[test]
fn create_database_returns_a_working_url() {
    let pg = PgServer::start().unwrap();
    let url = pg.create_database("source_db").unwrap();
    assert!(url.ends_with("/source_db"), "{url}");
    psql_url(&url, "CREATE TABLE t (id bigint PRIMARY KEY, v text)").unwrap();
    psql_url(&url, "INSERT INTO t VALUES (1, 'é😀')").unwrap();
    assert_eq!(pg.psql("source_db", "SELECT v FROM t").unwrap(), "é😀");
    assert!(pg.create_database("bad name; drop").is_err());
    pg.stop().unwrap();
}

#[test]
fn trust_server_accepts_any_password_but_password_server_checks_it() {
    let trust = PgServer::start().unwrap();
    let url = trust.create_role("alice", "right").unwrap();
    assert_eq!(psql_url(&url, "SELECT current_user").unwrap(), "alice");

    let pg = PgServer::start_with_password_auth().unwrap();
    let pw = pg.superuser_password().unwrap().to_owned();
    assert!(pg.url().contains(&pw));
    assert_eq!(psql_url(&pg.url(), "SELECT 1").unwrap(), "1");
    let no_pw = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    assert!(psql_url(&no_pw, "SELECT 1").is_err(), "password required");

    let good = pg.create_role("bob", "s3cr'et").unwrap();
    assert_eq!(psql_url(&good, "SELECT current_user").unwrap(), "bob");
    let bad = pg.url_for("bob", "wrong", "postgres");
    let err = psql_url(&bad, "SELECT 1").unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn parallel_starts_get_distinct_servers() {
    let handles: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| PgServer::start().unwrap()))
        .collect();
    let servers: Vec<PgServer> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ports: Vec<u16> = servers.iter().map(|s| s.port()).collect();
    for s in &servers {
        assert_eq!(psql_url(&s.url(), "SELECT 1").unwrap(), "1");
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 4);
}

#[test]
fn a_taken_port_is_retried() {
    // Hold a port and ask the harness to try it first: the server must come up elsewhere.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let pg = PgServer::start_with(PgOptions {
        first_port: Some(taken),
        ..PgOptions::default()
    })
    .unwrap();
    assert_ne!(pg.port(), taken);
    assert_eq!(psql_url(&pg.url(), "SELECT 1").unwrap(), "1");
}
