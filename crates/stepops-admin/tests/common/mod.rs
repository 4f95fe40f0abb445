//! A small Synapse stand-in on 127.0.0.1 for the tests: it records every request (method, path,
//! query, headers, body) and answers through a function the test gives.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use stepops_admin::{AdminError, ClientConfig, SynapseClient, Token, TokenSource};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-cased header names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Reply {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn empty(status: u16) -> Self {
        Reply {
            status,
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// The running server.
pub struct MockSynapse {
    pub base_url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

impl MockSynapse {
    /// Starts a server on 127.0.0.1:0 that answers with `respond`.
    pub async fn start(respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let recorded: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let respond: Responder = Arc::new(respond);
        let rec = recorded.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let rec = rec.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let rec = rec.clone();
                        let respond = respond.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let r = Recorded {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                query: parts.uri.query().map(str::to_owned),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.as_str().to_owned(),
                                            v.to_str().unwrap_or("<binary>").to_owned(),
                                        )
                                    })
                                    .collect(),
                                body: body.to_vec(),
                            };
                            let reply = respond(&r);
                            rec.lock().unwrap().push(r);
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(reply.status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(reply.body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockSynapse {
            base_url: format!("http://{addr}"),
            recorded,
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
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
