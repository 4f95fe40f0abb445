//! Secret values and where they are read from: one [`SecretSource`] for every reader (the
//! runner's database targets, the admin function's token, the notify function's webhook).
//!
//! - [`Secret`]: a value that never prints itself.
//! - [`SecretSource`], the AWS boundary, with its adapters beside it: [`AwsSecretSource`]
//!   (Secrets Manager and SSM, `aws.rs`), [`MemorySecretSource`] and [`NoSecretSource`]
//!   (`memory.rs`: local runs and tests).
//! - [`SecretError`]: what went wrong, named (`Stepops.NotFound`, `Stepops.Unauthorized`,
//!   `Stepops.Transient`, `Stepops.InvalidInput`), naming the reference and never the value.

mod aws;
mod memory;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use stepops_error::{ErrorName, Named};

pub use aws::AwsSecretSource;
pub use memory::{MemorySecretSource, NoSecretSource};

/// A secret value (a database URL, a token). `Debug` and `Display` print `[redacted]`; read the
/// value with [`Secret::expose`] only where it is handed to a driver.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The value itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a secret could not be read (or, for a target, used). Messages name the reference
/// (`secret NAME`, `parameter NAME`), never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The target argument is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The secret or parameter does not exist.
    #[error("{0} does not exist: create it, or fix the name that refers to it")]
    NotFound(String),
    /// The reader's role may not read it.
    #[error(
        "access to {0} was denied: grant the role that reads it (the runner's, the function's) read access to it, and kms:Decrypt on its key"
    )]
    Denied(String),
    /// The service could not be reached or failed; worth retrying.
    #[error("cannot read {0}: {1}")]
    Unavailable(String, String),
    /// The secret exists but holds no text (a binary secret, a parameter without value).
    #[error("{0} has no text value: store it as the secret's string (SecretString)")]
    NoValue(String),
    /// The secret exists but its value is not a usable URL.
    #[error("{0} does not hold a database URL: {1}")]
    BadValue(String, String),
}

impl Named for SecretError {
    fn error_name(&self) -> ErrorName {
        match self {
            SecretError::Invalid(_) | SecretError::NoValue(_) | SecretError::BadValue(..) => {
                ErrorName::InvalidInput
            }
            SecretError::NotFound(_) => ErrorName::NotFound,
            SecretError::Denied(_) => ErrorName::Unauthorized,
            SecretError::Unavailable(..) => ErrorName::Transient,
        }
    }
}

/// Reads secret values by name (Secrets Manager, SSM); implemented by [`AwsSecretSource`],
/// [`MemorySecretSource`] and [`NoSecretSource`].
pub trait SecretSource: Send + Sync + 'static {
    /// The value of the Secrets Manager secret `name` (its `SecretString`).
    fn secret(&self, name: &str) -> impl Future<Output = Result<Secret, SecretError>> + Send;
    /// The decrypted value of the SSM parameter `name`.
    fn parameter(&self, name: &str) -> impl Future<Output = Result<Secret, SecretError>> + Send;
}
