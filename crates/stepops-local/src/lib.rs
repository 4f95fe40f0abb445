//! The local Step Functions engine service (user guide: `docs/local-engine.md`).
//!
//! * [`LocalEngine::start`] opens the durable store under a state dir (`.stepops/` by
//!   default), loads `template.yaml` (state machines, activities, functions), serves the Step
//!   Functions JSON API on 127.0.0.1 and resumes executions that were RUNNING.
//! * Task states run through `stepops_asl::run` with this crate's dispatcher: Lambda tasks go to
//!   in-process handlers ([`LambdaRegistry`], [`lambda::handler`]), activity tasks to pollers
//!   (`GetActivityTask`), `.waitForTaskToken` to `SendTask*`, `states:startExecution` to nested
//!   executions.
//! * [`bench`]: `stepops local bench`, the engine's throughput with and without the store.

mod api;
pub mod arn;
pub mod bench;
mod dispatch;
mod dynamodb;
pub mod engine;
pub mod error;
pub mod events;
pub mod exec;
pub mod lambda;
pub mod logs;
pub mod store;
pub mod tasks;
pub mod template;

pub use dynamodb::TableSpec;
pub use engine::{Delivery, EngineConfig, ExecutionOutcome, LocalEngine};
pub use error::{ApiError, ApiErrorKind, LocalError};
pub use lambda::{LambdaError, LambdaHandler, LambdaRegistry, handler};
pub use template::{LoadedTemplate, TemplateOptions, load_template, resolve_resources};
