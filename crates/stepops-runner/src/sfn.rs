//! Building the AWS clients: the Step Functions client with an HTTP read timeout above the 60 s
//! a `GetActivityTask` poll is held, pointed at `--endpoint` (the local engine) when given.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sfn::config::{Credentials, Region};

/// The shared AWS configuration: the default chain (environment, profile, instance role),
/// `region` when given, and timeouts fit for long polls (`read_timeout` ≥ 65 s).
pub async fn load_sdk_config(
    region: Option<&str>,
    read_timeout: Duration,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(read_timeout)
            .operation_attempt_timeout(read_timeout + Duration::from_secs(5))
            .build(),
    );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// The Step Functions client. With `endpoint` (the local engine, or a test's server), requests
/// go there, signed with placeholder credentials (the local engine does not check signatures) and in `us-east-1` unless a region is set.
pub fn sfn_client(config: &aws_config::SdkConfig, endpoint: Option<&str>) -> aws_sdk_sfn::Client {
    let mut builder = aws_sdk_sfn::config::Builder::from(config);
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
        builder = builder.credentials_provider(Credentials::new(
            "stepops-local",
            "stepops-local",
            None,
            None,
            "stepops-local",
        ));
        if config.region().is_none() {
            builder = builder.region(Region::new("us-east-1"));
        }
    }
    aws_sdk_sfn::Client::from_conf(builder.build())
}

/// Shortcut for tests and embedders: a client for a local endpoint with long-poll timeouts, no
/// AWS configuration needed (nothing is read from the environment or instance metadata).
pub fn local_sfn_client(endpoint: &str) -> aws_sdk_sfn::Client {
    let config = aws_sdk_sfn::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "stepops-local",
            "stepops-local",
            None,
            None,
            "stepops-local",
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(70))
                .build(),
        )
        .build();
    aws_sdk_sfn::Client::from_conf(config)
}
