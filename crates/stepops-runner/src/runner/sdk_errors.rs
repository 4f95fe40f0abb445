//! SDK errors of the runner's Step Functions calls: the service's code, a display text and
//! whether the call is worth retrying.

use super::*;

/// `(service error code, display text, whether worth retrying)` of an SDK error: transport
/// failures, timeouts, throttling and 5xx are worth retrying.
pub(super) fn classify<E>(err: SdkError<E, HttpResponse>) -> (Option<String>, String, bool)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = sdk_error_text(&err);
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().map(str::to_owned);
            let retry = se.raw().status().is_server_error()
                || matches!(
                    code.as_deref(),
                    Some(
                        "ThrottlingException"
                            | "ServiceUnavailable"
                            | "InternalFailure"
                            | "RequestTimeout"
                    )
                );
            (code, text, retry)
        }
        _ => (None, text, true),
    }
}

pub(super) fn sdk_error_text<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    aws_sdk_sfn::error::DisplayErrorContext(err).to_string()
}
