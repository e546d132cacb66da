//! The bounded inference pool: a fixed number of worker threads behind a bounded queue. When the queue
//! is full, `submit` refuses at once (the HTTP layer answers 429), so memory never grows with load.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::metrics::QUEUE_DEPTH;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct WorkerPool {
    queue: SyncSender<Job>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the inference queue is full")]
    QueueFull,
    #[error("the job failed inside the worker")]
    Crashed,
}

impl WorkerPool {
    pub fn new(workers: usize, queue_capacity: usize) -> Self {
        let (queue, jobs) = sync_channel::<Job>(queue_capacity);
        let jobs = Arc::new(Mutex::new(jobs));
        for index in 0..workers.max(1) {
            let jobs = Arc::clone(&jobs);
            std::thread::Builder::new()
                .name(format!("vista-worker-{index}"))
                .spawn(move || loop {
                    let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                        Ok(job) => job,
                        Err(_) => return, // every sender is gone: the server is shutting down
                    };
                    QUEUE_DEPTH.dec();
                    let _working = crate::cpu_budget::budget().working();
                    job();
                })
                .expect("spawning an inference worker");
        }
        WorkerPool { queue }
    }

    /// Queues `work` and waits for its result. A panic inside `work` is contained in the worker and
    /// reported as `Crashed`; the worker lives on.
    pub async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, SubmitError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work));
            let _ = done.send(outcome.ok());
        });
        match self.queue.try_send(job) {
            Ok(()) => QUEUE_DEPTH.inc(),
            Err(TrySendError::Full(_)) => return Err(SubmitError::QueueFull),
            Err(TrySendError::Disconnected(_)) => return Err(SubmitError::Crashed),
        }
        result.await.ok().flatten().ok_or(SubmitError::Crashed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn results_come_back_and_panics_do_not_kill_the_worker() {
        let pool = WorkerPool::new(1, 4);
        assert_eq!(pool.run(|| 2 + 2).await, Ok(4));
        assert_eq!(
            pool.run(|| -> i32 { panic!("boom") }).await,
            Err(SubmitError::Crashed)
        );
        assert_eq!(pool.run(|| 7).await, Ok(7), "the worker survived the panic");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_growing() {
        let pool = WorkerPool::new(1, 1);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || gate.recv().unwrap()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await; // the worker is now blocked on the gate
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| 1).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await; // the one queue slot is taken
        assert_eq!(pool.run(|| 2).await, Err(SubmitError::QueueFull));
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Ok(()));
        assert_eq!(queued.await.unwrap(), Ok(1));
    }
}
