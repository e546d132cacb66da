//! Model customization: datasets of labelled images (COCO files), heads trained on the CPU over the
//! shipped models' frozen features, their evaluation, and product recognition on shelf photos. The
//! trained heads themselves (how an image becomes features, how outputs become classes and boxes)
//! are models, in `models::custom_head`; this module fits, measures, stores and schedules them.

pub mod coco;
pub mod linear;
pub mod metrics;
pub mod products;
pub mod records;
pub mod service;
pub mod sources;
pub mod train;

/// The guarded value, also after a panic elsewhere poisoned the lock (what it guards stays whole:
/// progress, results by index, a cache).
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
