//! stepops admin tasks: the ad-hoc operations on the Synapse REST API (remove a user, verify an
//! OAuth client, make an entity public, …) as typed, validated and audited functions.
//!
//! The flow, shared by the Lambda behind `statemachine/admin.asl.json` and by `stepops admin`:
//!
//! 1. [`AdminRequest::from_input`] (or [`AdminRequest::from_cli`]) validates everything, including
//!    that the request is for the stack's own [`Environment`], before any request is sent.
//! 2. A [`SynapseClient`] is built once per process from a [`ClientConfig`] and a
//!    [`TokenSource`] ([`SecretsManagerTokenSource`] in AWS, [`LocalTokenSource`] locally).
//! 3. [`run`] performs the reads, then (unless `dryRun`) the write, within a time budget, and
//!    returns one [`AuditRecord`], which it also logs as one line (target [`AUDIT_TARGET`],
//!    `audit = true`; [`logging`] is the Lambda's subscriber, which writes the record as JSON).
//!    The record holds ids, the request and what changed, never a removed user's profile: that
//!    goes, when the stack keeps it, to an SSE-KMS object of [`ProfileRecords`], and the record
//!    holds only its location.
//!
//! Every error is an [`AdminError`], which implements [`stepops_error::Named`].

pub mod client;
pub mod error;
pub mod handler;
pub mod logging;
pub mod records;
pub mod request;
pub mod settings;
pub mod token;
pub mod types;

pub use client::{Call, ClientConfig, SynapseClient, api};
pub use error::AdminError;
pub use handler::{
    AUDIT_TARGET, AuditContext, AuditRecord, LAMBDA_MARGIN, RequestLine, handle, handle_until,
    invocation_deadline, invoke, invoke_until, run, run_until, user_bundle_summary,
};
pub use records::{ProfileRecords, RECORDS_PREFIX};
pub use request::{AdminRequest, TASK_NAMES, Task};
pub use settings::AdminSettings;
pub use token::{
    DEFAULT_SECRET_NAME, LocalTokenSource, SecretsManagerTokenSource, Token, TokenSource,
    default_secret_name,
};
pub use types::{ClientId, Email, EntityId, Environment, Feature, UserId, parse_environment};
