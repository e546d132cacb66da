//! Prometheus metrics, registered once in the default registry and rendered by `/metrics`.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, Encoder, HistogramVec,
    IntCounterVec, IntGauge, TextEncoder,
};

pub static HTTP_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "vista_http_requests_total",
        "HTTP requests by route and status",
        &["route", "status"]
    )
    .expect("metric registers once")
});

pub static HTTP_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "vista_http_request_duration_seconds",
        "Time from request to response, by route",
        &["route"],
        vec![0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0]
    )
    .expect("metric registers once")
});

pub static INFERENCE_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "vista_model_inference_seconds",
        "Time spent inside one model run (an ONNX Runtime session or a Tesseract engine), by model",
        &["model"],
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0]
    )
    .expect("metric registers once")
});

pub static QUEUE_DEPTH: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "vista_queue_depth",
        "Accepted jobs waiting for an inference worker"
    )
    .expect("metric registers once")
});

pub static DECODE_PIXELS_IN_USE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "vista_decode_pixels_in_use",
        "Decoded image pixels held from the shared pixel budget"
    )
    .expect("metric registers once")
});

pub static CPU_BUDGET_CORES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "vista_cpu_budget_cores",
        "Threads that may run model code at once (--cores)"
    )
    .expect("metric registers once")
});

pub static CPU_BUDGET_IN_USE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("vista_cpu_budget_in_use", "Threads running model code now")
        .expect("metric registers once")
});

pub static TRAINING_JOBS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "vista_training_jobs",
        "Training and evaluation jobs this replica has queued or running"
    )
    .expect("metric registers once")
});

pub static TRAINING_PROGRESS: LazyLock<prometheus::Gauge> = LazyLock::new(|| {
    prometheus::register_gauge!(
        "vista_training_progress_ratio",
        "How far the running training job's current stage is (0..1)"
    )
    .expect("metric registers once")
});

/// All metrics in the Prometheus text format.
pub fn render() -> String {
    // Touch every metric so that it is listed before its first observation.
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_LATENCY);
    LazyLock::force(&INFERENCE_SECONDS);
    LazyLock::force(&QUEUE_DEPTH);
    LazyLock::force(&DECODE_PIXELS_IN_USE);
    CPU_BUDGET_CORES.set(crate::cpu_budget::budget().cores() as i64);
    LazyLock::force(&CPU_BUDGET_IN_USE);
    LazyLock::force(&TRAINING_JOBS);
    LazyLock::force(&TRAINING_PROGRESS);
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&prometheus::gather(), &mut out)
        .expect("text encoding cannot fail");
    String::from_utf8(out).expect("prometheus text is UTF-8")
}
