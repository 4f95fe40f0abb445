//! In-process Lambda handlers: the same `async fn(Value) -> Result<Value, LambdaError>` the
//! Lambda binaries wrap, registered by function name or logical id.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::arn::lambda_function_name;

/// A Lambda function's error, as the Lambda runtime reports it (`errorType`, `errorMessage`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {error_message}")]
pub struct LambdaError {
    /// `errorType`: becomes the ASL error name (what `Retry`/`Catch` match).
    pub error_type: String,
    /// `errorMessage`.
    pub error_message: String,
}

impl LambdaError {
    /// An error with this type and message.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        LambdaError {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }

    /// From any named stepops error: `errorType` is its `Stepops.*` name.
    pub fn from_named<E: stepops_error::Named + ?Sized>(err: &E) -> Self {
        let f = stepops_error::TaskFailure::from_error(err);
        LambdaError::new(f.error, f.cause)
    }
}

/// A registered handler.
pub type LambdaHandler =
    Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, LambdaError>> + Send + Sync>;

/// Wraps an `async fn(Value) -> Result<Value, LambdaError>` (or closure) as a [`LambdaHandler`].
pub fn handler<F, Fut>(f: F) -> LambdaHandler
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, LambdaError>> + Send + 'static,
{
    Arc::new(move |v| Box::pin(f(v)))
}

/// Handlers by function name, with aliases (logical id ⇄ `FunctionName`) from the template.
#[derive(Clone, Default)]
pub struct LambdaRegistry {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    handlers: HashMap<String, LambdaHandler>,
    /// other name → registered name candidates (both directions).
    aliases: HashMap<String, Vec<String>>,
}

impl LambdaRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` under `name` (a function name or a template logical id).
    pub fn register(&self, name: impl Into<String>, handler: LambdaHandler) {
        self.inner
            .write()
            .expect("lambda registry lock")
            .handlers
            .insert(name.into(), handler);
    }

    /// Makes `a` and `b` (a logical id and its `FunctionName`) designate the same function.
    pub fn alias(&self, a: &str, b: &str) {
        if a == b {
            return;
        }
        let mut inner = self.inner.write().expect("lambda registry lock");
        inner.aliases.entry(a.into()).or_default().push(b.into());
        inner.aliases.entry(b.into()).or_default().push(a.into());
    }

    /// The handler `function` (name, ARN or partial ARN) designates.
    pub fn resolve(&self, function: &str) -> Option<LambdaHandler> {
        let (name, _qualifier) = lambda_function_name(function);
        let inner = self.inner.read().expect("lambda registry lock");
        if let Some(h) = inner.handlers.get(name) {
            return Some(h.clone());
        }
        inner
            .aliases
            .get(name)?
            .iter()
            .find_map(|n| inner.handlers.get(n).cloned())
    }

    /// Registered names, sorted (for error messages).
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .read()
            .expect("lambda registry lock")
            .handlers
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }
}

/// How a Lambda invocation ended, as a Task state sees it.
#[derive(Debug, PartialEq)]
pub enum Invocation {
    /// The function returned this payload.
    Ok(Value),
    /// It failed: the ASL `(error, cause)`.
    Err(String, String),
}

/// Runs `handler` on `payload` in its own task (a panic becomes `Lambda.Unknown`) and maps
/// errors as Step Functions does: `errorType` → error, the function's error document
/// `{"errorType","errorMessage"}` → cause.
pub async fn invoke(handler: LambdaHandler, function: &str, payload: Value) -> Invocation {
    let joined = tokio::spawn(handler(payload)).await;
    match joined {
        Ok(Ok(v)) => Invocation::Ok(v),
        Ok(Err(e)) => {
            let error = if e.error_type.is_empty() {
                "Lambda.Unknown".to_string()
            } else {
                e.error_type.clone()
            };
            let cause = json!({"errorType": e.error_type, "errorMessage": e.error_message});
            Invocation::Err(error, cause.to_string())
        }
        Err(join) => {
            let what = if join.is_panic() {
                let p = join.into_panic();
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into())
            } else {
                "cancelled".into()
            };
            Invocation::Err(
                "Lambda.Unknown".into(),
                format!(
                    "The Lambda function {function} did not return: its handler panicked ({what}). \
                     Unhandled errors are reported as Lambda.Unknown, as in AWS."
                ),
            )
        }
    }
}

/// The `arn:aws:states:::lambda:invoke` result wrapping `payload`, as the optimized
/// integration returns it.
pub fn invoke_result(payload: Value, request_id: &str, status: u16) -> Value {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let len = payload.to_string().len().to_string();
    json!({
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {
                "X-Amz-Executed-Version": ["$LATEST"],
                "x-amzn-Remapped-Content-Length": ["0"],
                "Connection": ["keep-alive"],
                "x-amzn-RequestId": [request_id],
                "Content-Length": [len],
                "Date": [date],
                "Content-Type": ["application/json"]
            },
            "HttpHeaders": {
                "Connection": "keep-alive",
                "Content-Length": len,
                "Content-Type": "application/json",
                "Date": date,
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-Remapped-Content-Length": "0",
                "x-amzn-RequestId": request_id
            },
            "HttpStatusCode": status
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": status
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn maps_errors_like_step_functions() {
        let reg = LambdaRegistry::new();
        reg.register(
            "ValidateInput",
            handler(|v: Value| async move {
                if v["ok"] == true {
                    Ok(json!({"seen": v}))
                } else {
                    Err(LambdaError::new("Stepops.InvalidInput", "no ok"))
                }
            }),
        );
        reg.alias("ValidateInput", "stepops-validate");
        let h = reg
            .resolve("arn:aws:lambda:us-east-1:123456789012:function:stepops-validate")
            .expect("alias resolves");
        assert_eq!(
            invoke(h.clone(), "f", json!({"ok": true})).await,
            Invocation::Ok(json!({"seen": {"ok": true}}))
        );
        match invoke(h, "f", json!({})).await {
            Invocation::Err(e, c) => {
                assert_eq!(e, "Stepops.InvalidInput");
                let cause: Value = serde_json::from_str(&c).unwrap();
                assert_eq!(cause["errorMessage"], "no ok");
                assert_eq!(cause["errorType"], "Stepops.InvalidInput");
            }
            other => panic!("{other:?}"),
        }
        assert!(reg.resolve("other").is_none());
    }

    #[tokio::test]
    async fn panics_are_lambda_unknown() {
        let h = handler(|_v: Value| async move {
            if true {
                panic!("boom");
            }
            Ok(Value::Null)
        });
        match invoke(h, "f", json!({})).await {
            Invocation::Err(e, c) => {
                assert_eq!(e, "Lambda.Unknown");
                assert!(c.contains("boom"), "{c}");
            }
            other => panic!("{other:?}"),
        }
    }
}
