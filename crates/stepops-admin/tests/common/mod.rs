//! A small Synapse stand-in on 127.0.0.1 for the tests (the testkit's recording HTTP server):
//! it records every request (method, path, query, headers, body) and answers through a
//! function the test gives.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use stepops_admin::{AdminError, ClientConfig, SynapseClient, Token, TokenSource};
use stepops_testkit::http::HttpServer;
pub use stepops_testkit::http::{Recorded, Reply};

/// The running server (the testkit's recording HTTP server).
pub struct MockSynapse {
    pub base_url: String,
    server: HttpServer,
}

impl MockSynapse {
    /// Starts a server on 127.0.0.1:0 that answers with `respond`.
    pub async fn start(respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let server = HttpServer::start(respond).await;
        MockSynapse {
            base_url: server.url().to_owned(),
            server,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    /// A client for this server with `tokens`.
    pub fn client<S: TokenSource>(&self, tokens: S) -> SynapseClient<S> {
        SynapseClient::new(self.config(), tokens).unwrap()
    }

    /// The client settings for this server (no system proxy: the tests talk to 127.0.0.1).
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(&self.base_url).unwrap();
        config.system_proxy = false;
        config
    }
}

/// A token source for tests: hands out `tokens[0]`, and the next one on each refresh. Counts
/// every call (`calls`: `token` and `refresh`; `refreshes`: `refresh` only).
pub struct ListTokens {
    tokens: Vec<&'static str>,
    index: AtomicUsize,
    pub refreshes: AtomicUsize,
    pub calls: AtomicUsize,
}

impl ListTokens {
    pub fn new(tokens: &[&'static str]) -> Self {
        ListTokens {
            tokens: tokens.to_vec(),
            index: AtomicUsize::new(0),
            refreshes: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
        }
    }

    /// How many times the token was asked for (`token` or `refresh`).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl TokenSource for ListTokens {
    async fn token(&self) -> Result<Token, AdminError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Token::new(self.tokens[self.index.load(Ordering::SeqCst)])
    }

    async fn refresh(&self, _rejected: &Token) -> Result<Token, AdminError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let i = (self.index.load(Ordering::SeqCst) + 1).min(self.tokens.len() - 1);
        self.index.store(i, Ordering::SeqCst);
        Token::new(self.tokens[i])
    }
}

/// The token value the tests use; it must never show up in logs or output.
pub const SECRET: &str = "syn-pat-eyJ0eXAiOiJKV1QiLCJ-SECRET-7f3a9c";

/// A writer for a tracing subscriber that keeps everything written (the tests' log capture).
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
