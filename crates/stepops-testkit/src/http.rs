//! A recording HTTP/1.1 server on 127.0.0.1 for tests that need a real service on the wire (a
//! Synapse, S3, CloudFormation or Step Functions stand-in): it records every request and
//! answers through a function the test gives.
//!
//! ```no_run
//! # async fn demo() {
//! use stepops_testkit::http::{HttpServer, Reply};
//! let server = HttpServer::start(|req| Reply::json(200, serde_json::json!({"path": req.path}))).await;
//! // … point the client at server.url() …
//! assert_eq!(server.requests().len(), 0);
//! # }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Lower-cased header names.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// A header's value (`name` lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body as JSON (panics otherwise: a test's expectation).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    /// The body as `application/x-www-form-urlencoded` pairs, decoded.
    pub fn form(&self) -> BTreeMap<String, String> {
        form_decode(&String::from_utf8_lossy(&self.body))
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Headers (`content-type` among them).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
}

impl Reply {
    /// A reply of `content_type` with `body`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// A JSON reply.
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::new(status, "application/json", body.to_string())
    }

    /// An XML reply (the AWS Query and REST-XML protocols).
    pub fn xml(status: u16, body: impl Into<String>) -> Reply {
        Reply::new(status, "text/xml", body.into())
    }

    /// An empty reply.
    pub fn empty(status: u16) -> Reply {
        Reply::new(status, "application/json", Vec::new())
    }

    /// This reply with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// This reply, sent after `delay`.
    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A boxed future of a reply, for responders that wait (a held long poll, a slow service).
pub type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

type Responder = Arc<dyn Fn(Recorded) -> ReplyFuture + Send + Sync>;

/// The running server; it stops when the test's runtime ends (or, for
/// [`HttpServer::start_in_thread`], with the process).
pub struct HttpServer {
    url: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

impl HttpServer {
    /// Starts a server on a free port of 127.0.0.1 that answers with `respond`.
    pub async fn start(respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> HttpServer {
        let respond = Arc::new(respond);
        HttpServer::start_async(move |req| {
            let reply = respond(&req);
            Box::pin(async move { reply })
        })
        .await
    }

    /// Starts a server whose answers are computed asynchronously (a request may wait for
    /// something another request does). The request is recorded before `respond` runs.
    pub async fn start_async(
        respond: impl Fn(Recorded) -> ReplyFuture + Send + Sync + 'static,
    ) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("a bound address");
        let recorded: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let respond: Responder = Arc::new(respond);
        let rec = recorded.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let rec = rec.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let rec = rec.clone();
                        let respond = respond.clone();
                        async move {
                            let recorded = record(req).await;
                            rec.lock().unwrap().push(recorded.clone());
                            let reply = respond(recorded).await;
                            if !reply.delay.is_zero() {
                                tokio::time::sleep(reply.delay).await;
                            }
                            let mut response = Response::builder().status(reply.status);
                            for (name, value) in &reply.headers {
                                response = response.header(name, value);
                            }
                            Ok::<_, Infallible>(
                                response
                                    .body(Full::new(Bytes::from(reply.body)))
                                    .expect("a valid response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        HttpServer {
            url: format!("http://{addr}"),
            recorded,
        }
    }

    /// [`HttpServer::start`] on a runtime of its own thread, for synchronous tests (a test that
    /// runs a binary and waits for it). It serves until the process ends.
    pub fn start_in_thread(
        respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> HttpServer {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the test server");
            runtime.block_on(async move {
                let server = HttpServer::start(respond).await;
                tx.send(server).expect("the test waits for its server");
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("the server thread started")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }
}

async fn record(req: Request<Incoming>) -> Recorded {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Recorded {
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
    }
}

/// Decodes `a=1&b=x%20y` (form or query string) into pairs; `+` is a space.
pub fn form_decode(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match text.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                    Some(Ok(b)) => {
                        out.push(b);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_decode() {
        let pairs = form_decode(
            "Action=DescribeStacks&StackName=stepops-dev&NextToken=a%2Fb%3D&x=1+2&bad=%zz",
        );
        assert_eq!(pairs["Action"], "DescribeStacks");
        assert_eq!(pairs["NextToken"], "a/b=");
        assert_eq!(pairs["x"], "1 2");
        assert_eq!(pairs["bad"], "%zz");
    }
}
