//! The asynchronous Read operations' background work, beside the store they live in: a bounded
//! backlog of accepted documents, one runner that reads them a document at a time next to the
//! interactive workers, a resumer that picks up what a restart or a store outage left unfinished, and
//! a sweeper that deletes expired operations. Requests and results are stored typed (a
//! [`ReadRequest`], the pages' [`ReadPage`]s); a protocol surface renders them when they are asked for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::pipeline::read::ReadOptions;
use crate::pipeline::{Pipeline, ReadPage};
use crate::store::{OperationStore, Status};

/// Pages read from one document at most (Azure's limit).
pub const MAX_PAGES: usize = 2000;
/// How often the resumer may look for this replica's unfinished operations that nothing is processing.
/// It looks at start and after a store failure only: the scan opens every stored record.
const RESUME_EVERY: Duration = Duration::from_secs(5);
/// Why an operation stored by a vista from before requests and results were stored typed fails.
const EARLIER_LAYOUT: &str =
    "this operation was stored by an earlier version of vista; submit the document again";

/// What to read of a document, as the caller asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub pages: PageRanges,
    /// The language the caller named, if any (it chooses the OCR engine and is reported per page).
    pub language: Option<String>,
    /// Lines by blocks and columns instead of by rows.
    pub natural_order: bool,
    /// What the surface that accepted the document keeps with it (Google: where the results go);
    /// `None` for the Azure Read API. A surface reports only its own operations.
    #[serde(default)]
    pub surface: Option<serde_json::Value>,
}

impl ReadRequest {
    /// How the pipeline reads it; with `max_running`, reading stops that long from now.
    pub fn options(&self, max_running: Option<Duration>) -> ReadOptions {
        ReadOptions {
            assume_upright: false,
            language: self.language.clone(),
            natural_order: self.natural_order,
            deadline: max_running.map(|d| std::time::Instant::now() + d),
        }
    }
}

/// One operation as a surface reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub status: Status,
    /// Unix seconds.
    pub created: f64,
    pub updated: f64,
    pub request: ReadRequest,
    /// The pages read, once it succeeded.
    pub pages: Option<Vec<ReadPage>>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Why a document was not accepted, or an operation cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("too many documents are waiting to be read")]
    BacklogFull,
    #[error("the operation store is unavailable: {0:#}")]
    StoreUnavailable(anyhow::Error),
}

/// `pages`: 1-based inclusive ranges; none selects every page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageRanges(Vec<(usize, usize)>);

impl PageRanges {
    /// A comma-separated list of `N`, `N-M`, `N-` and `-M`; empty selects all.
    pub fn parse(text: &str) -> Option<Self> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let number = |s: &str| s.trim().parse::<usize>().ok().filter(|&n| n >= 1);
            let range = match part.split_once('-') {
                None => (number(part)?, number(part)?),
                Some(("", to)) => (1, number(to)?),
                Some((from, "")) => (number(from)?, usize::MAX),
                Some((from, to)) => (number(from)?, number(to)?),
            };
            if range.0 > range.1 {
                return None;
            }
            ranges.push(range);
        }
        Some(PageRanges(ranges))
    }

    /// Every page.
    pub fn all() -> Self {
        PageRanges(Vec::new())
    }

    pub fn contains(&self, page: usize) -> bool {
        self.0.is_empty() || self.0.iter().any(|&(from, to)| (from..=to).contains(&page))
    }
}

/// How many accepted documents may wait to be read, in count and in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BacklogLimits {
    pub documents: usize,
    pub bytes: usize,
}

/// The operations this replica accepted and has not finished, with their document sizes: what bounds
/// the queue, and what keeps an operation from being queued twice.
#[derive(Default)]
struct Backlog {
    pending: HashMap<String, usize>,
    bytes: usize,
}

impl Backlog {
    /// Takes `id` in if the limits allow a document of `size` (resumed operations always: they were
    /// accepted already). False if it is already in, or the backlog is full.
    fn admit(&mut self, id: &str, size: usize, limits: Option<BacklogLimits>) -> bool {
        let full = limits
            .is_some_and(|l| self.pending.len() >= l.documents || self.bytes + size > l.bytes);
        if full || self.pending.contains_key(id) {
            return false;
        }
        self.pending.insert(id.to_string(), size);
        self.bytes += size;
        true
    }

    fn release(&mut self, id: &str) {
        if let Some(size) = self.pending.remove(id) {
            self.bytes -= size;
        }
    }
}

fn lock(backlog: &Mutex<Backlog>) -> std::sync::MutexGuard<'_, Backlog> {
    backlog
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The queue of accepted operations and the store they live in.
pub struct ReadJobs {
    store: Arc<OperationStore>,
    queue: mpsc::UnboundedSender<String>,
    backlog: Arc<Mutex<Backlog>>,
    limits: BacklogLimits,
    max_running: Option<Duration>,
}

impl ReadJobs {
    /// Starts the runner, the resumer and the sweeper. Call from inside the tokio runtime.
    /// Each document may be read for `max_running` at most (none: no limit).
    pub fn start(
        store: OperationStore,
        pipeline: Arc<Pipeline>,
        limits: BacklogLimits,
        max_running: Option<Duration>,
    ) -> Self {
        let store = Arc::new(store);
        let (queue, mut pending) = mpsc::unbounded_channel::<String>();
        let backlog = Arc::new(Mutex::new(Backlog::default()));
        // Set at start and by every store failure of the runner; cleared by a successful scan.
        let interrupted = Arc::new(AtomicBool::new(true));
        let runner = (
            Arc::clone(&store),
            Arc::clone(&backlog),
            Arc::clone(&interrupted),
        );
        tokio::spawn(async move {
            while let Some(id) = pending.recv().await {
                let (store, pipeline, done) =
                    (Arc::clone(&runner.0), Arc::clone(&pipeline), id.clone());
                let outcome = tokio::task::spawn_blocking(move || {
                    process(&store, &pipeline, &id, max_running)
                })
                .await;
                match outcome {
                    Ok(Err(e)) => {
                        tracing::error!(
                            "read operation store failure (the operation resumes when the store \
                             answers): {e:#}"
                        );
                        runner.2.store(true, Ordering::SeqCst);
                    }
                    Err(e) => tracing::error!("read operation panicked: {e}"),
                    Ok(Ok(())) => {}
                }
                lock(&runner.1).release(&done);
            }
        });
        let resumer = (
            Arc::clone(&store),
            Arc::clone(&backlog),
            queue.clone(),
            interrupted,
        );
        tokio::spawn(async move {
            let mut every = tokio::time::interval(RESUME_EVERY);
            loop {
                every.tick().await;
                if !resumer.3.swap(false, Ordering::SeqCst) {
                    continue;
                }
                let store = Arc::clone(&resumer.0);
                let Ok(Ok(unfinished)) =
                    tokio::task::spawn_blocking(move || store.unfinished()).await
                else {
                    // The store is unreachable: try again at the next tick.
                    resumer.3.store(true, Ordering::SeqCst);
                    continue;
                };
                for id in unfinished {
                    if lock(&resumer.1).admit(&id, 0, None) {
                        tracing::info!(operation = %id, "resuming an unfinished operation");
                        let _ = resumer.2.send(id);
                    }
                }
            }
        });
        crate::store::spawn_sweeper(Arc::clone(&store), "read operations", OperationStore::sweep);
        ReadJobs {
            store,
            queue,
            backlog,
            limits,
            max_running,
        }
    }

    /// Accepts a document: stores it sealed with its request and queues it; its operation's id.
    pub async fn submit(
        &self,
        document: bytes::Bytes,
        request: &ReadRequest,
    ) -> Result<String, JobError> {
        let id = uuid::Uuid::new_v4().to_string();
        if !lock(&self.backlog).admit(&id, document.len(), Some(self.limits)) {
            return Err(JobError::BacklogFull);
        }
        let params =
            serde_json::to_value(request).map_err(|e| JobError::StoreUnavailable(e.into()))?;
        let stored_id = id.clone();
        let stored = self
            .with_store(move |store| store.create(&stored_id, &document, params))
            .await;
        if let Err(error) = stored {
            lock(&self.backlog).release(&id);
            return Err(error);
        }
        // The runner lives as long as the runtime; were it gone, the resumer would not be either.
        let _ = self.queue.send(id.clone());
        Ok(id)
    }

    /// The operation `id`, if it exists and has not expired.
    pub async fn operation(&self, id: String) -> Result<Option<Operation>, JobError> {
        let record = self.with_store(move |store| store.get(&id)).await?;
        Ok(record.map(|record| {
            let request = serde_json::from_value::<ReadRequest>(record.params);
            let pages = record
                .result
                .map(serde_json::from_value::<Vec<ReadPage>>)
                .transpose();
            match (request, pages) {
                (Ok(request), Ok(pages)) => Operation {
                    status: record.status,
                    created: record.created,
                    updated: record.updated,
                    request,
                    pages,
                    error: record.error,
                },
                // Stored by a vista before operations were stored typed: told as failed, not lost.
                _ => Operation {
                    status: Status::Failed,
                    created: record.created,
                    updated: record.updated,
                    request: ReadRequest {
                        pages: PageRanges(Vec::new()),
                        language: None,
                        natural_order: false,
                        surface: None,
                    },
                    pages: None,
                    error: Some(EARLIER_LAYOUT.into()),
                },
            }
        }))
    }

    /// How long one document may be read.
    pub fn max_running(&self) -> Option<Duration> {
        self.max_running
    }

    /// Whether the store answers now (`/ready`).
    pub async fn store_reachable(&self) -> bool {
        self.with_store(|store| store.check()).await.is_ok()
    }

    /// Runs `work` on the store off the async threads.
    async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&OperationStore) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, JobError> {
        crate::store::off_thread(Arc::clone(&self.store), work)
            .await
            .map_err(JobError::StoreUnavailable)
    }
}

/// Reads one operation's document and records the outcome; a document that cannot be read makes the
/// operation `failed`, never lost.
fn process(
    store: &OperationStore,
    pipeline: &Pipeline,
    id: &str,
    max_running: Option<Duration>,
) -> anyhow::Result<()> {
    let _working = crate::cpu_budget::budget().working();
    let Some((record, document)) = store.start(id)? else {
        return Ok(());
    };
    let outcome = match serde_json::from_value::<ReadRequest>(record.params) {
        Ok(request) => {
            let options = request.options(max_running);
            let selected = |page| request.pages.contains(page);
            pipeline
                .read_document(&document, &selected, MAX_PAGES, &options)
                .map_err(|e| e.to_string())
                .and_then(|pages| serde_json::to_value(pages).map_err(|e| e.to_string()))
        }
        Err(_) => Err(EARLIER_LAYOUT.into()),
    };
    store.finish(id, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_ranges_take_azures_forms_and_refuse_the_rest() {
        let ranges = PageRanges::parse("1-2, 5,7-").unwrap();
        let selected: Vec<usize> = (1..=9).filter(|&p| ranges.contains(p)).collect();
        assert_eq!(selected, [1, 2, 5, 7, 8, 9]);
        assert!(
            PageRanges::parse("-3").unwrap().contains(3)
                && !PageRanges::parse("-3").unwrap().contains(4)
        );
        assert!(
            PageRanges::parse("").unwrap().contains(1000),
            "no pages given: all"
        );
        for bad in ["0", "3-1", "a", "1-b", "1--2"] {
            assert!(PageRanges::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_backlog_is_bounded_by_count_and_bytes_and_never_holds_an_id_twice() {
        let limits = Some(BacklogLimits {
            documents: 2,
            bytes: 100,
        });
        let mut backlog = Backlog::default();
        assert!(backlog.admit("a", 60, limits));
        assert!(!backlog.admit("b", 41, limits), "bytes over the limit");
        assert!(backlog.admit("b", 40, limits));
        assert!(!backlog.admit("c", 0, limits), "count over the limit");
        assert!(!backlog.admit("a", 0, None), "already queued");
        backlog.release("a");
        assert_eq!(backlog.bytes, 40);
        assert!(backlog.admit("c", 60, limits));
        assert!(
            backlog.admit("resumed", 0, None),
            "resumed work is always taken back"
        );
    }

    #[test]
    fn requests_and_pages_round_trip_through_their_stored_form() {
        use crate::geometry::Quad;
        use crate::pipeline::read::{Orientation, PageText, TextLine, TextWord};
        let request = ReadRequest {
            pages: PageRanges::parse("1-2,5").unwrap(),
            language: Some("en".into()),
            natural_order: true,
            surface: Some(serde_json::json!({"output": "gs://b/out/"})),
        };
        let stored = serde_json::to_value(&request).unwrap();
        assert_eq!(
            serde_json::from_value::<ReadRequest>(stored).unwrap(),
            request
        );
        let polygon = Quad([(1.0, 2.0), (3.0, 2.0), (3.0, 4.0), (1.0, 4.0)]);
        let pages = vec![ReadPage {
            number: 2,
            width: 8.5,
            height: 11.0,
            in_inches: true,
            text: PageText {
                lines: vec![TextLine {
                    text: "Hi".into(),
                    polygon,
                    words: vec![TextWord {
                        text: "Hi".into(),
                        polygon,
                        confidence: 0.9,
                    }],
                }],
                orientation: Some(Orientation::Right),
                angle: 90.0,
            },
        }];
        let stored = serde_json::to_value(&pages).unwrap();
        assert_eq!(
            serde_json::from_value::<Vec<ReadPage>>(stored).unwrap(),
            pages
        );
        // A request stored by the previous layout does not pass for a typed one.
        let legacy = serde_json::json!({"pages": "1-2", "language": null, "readingOrder": "basic"});
        assert!(serde_json::from_value::<ReadRequest>(legacy).is_err());
    }
}
