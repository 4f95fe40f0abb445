//! Shared test helpers: an engine on a temp dir and a real `aws-sdk-sfn` client for it.
#![allow(dead_code)]

use std::time::Duration;

use aws_sdk_sfn::Client;
use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
pub use stepops_local::{EngineConfig, LocalEngine};

/// A configuration on `dir`, serving on a free port, with a short long-poll.
pub fn config(dir: &std::path::Path) -> EngineConfig {
    EngineConfig {
        poll_timeout: Duration::from_secs(1),
        time_scale: 1.0,
        ..EngineConfig::new(dir)
    }
}

/// The real SDK client, pointed at the engine.
pub fn client(engine: &LocalEngine) -> Client {
    let conf = aws_sdk_sfn::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(engine.endpoint().expect("serving"))
        .build();
    Client::from_conf(conf)
}

/// The error code of an SDK error (`TaskTimedOut`, …).
pub fn code<E: aws_sdk_sfn::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_string()
}
