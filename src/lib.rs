//! vista: a self-hosted image-analysis server that speaks the Azure AI Vision wire protocol.
//!
//! A request flows one way: [`http`] (routes, Azure JSON, errors) → [`pipeline`] (decode once, run the
//! requested features) → [`models`] (one file per model) over [`runtime`] (ONNX Runtime); [`store`]
//! keeps Read operations and [`read_jobs`] reads them in the background; [`cpu_budget`] bounds the threads
//! running model code to the cores.

pub mod cpu_budget;
pub mod custom;
pub mod fetch;
pub mod geometry;
pub mod http;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod read_jobs;
pub mod runtime;
pub mod search_index;
pub mod store;
