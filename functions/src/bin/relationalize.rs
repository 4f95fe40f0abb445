//! Lambda `relationalize` (statemachine/relationalize.asl.json): `{"bucket", "key"}` → that
//! archive's Parquet tables and quarantine records, returning its report; `{"summarize":
//! {"Bucket", "Key"}}` → the Distributed Map run's totals from its result files.
//! Configuration (set by template.yaml): `STEPOPS_RELZ_OUTPUT` (`s3://BUCKET/PREFIX`, the
//! stack's Namespace included), `STEPOPS_RELZ_SCHEMAS` (optional),
//! `STEPOPS_RELZ_MAX_DOCUMENT_BYTES` (optional). See docs/relationalize.md.

use stepops_relationalize::service::{from_env, handle_event};
use stepops_store::{AnyStore, S3Store};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    let s3 = S3Store::from_config(&config);
    let setup = from_env(|k| std::env::var(k).ok(), || s3.clone())
        .map(|relz| (relz, AnyStore::S3(s3.clone())));
    stepops_lambda::serve("relationalize", setup, |event, state| async move {
        let (relz, input) = &*state;
        // Boxed: the archive's future is deep enough to exceed the compiler's layout limit
        // when it is inlined into the runtime's.
        Box::pin(handle_event(relz, input, &event.payload)).await
    })
    .await
}
