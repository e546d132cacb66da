//! One CPU budget for all model code: at any moment the threads running models (ONNX Runtime sessions,
//! Tesseract, PDFium, the text encoder) hold one permit each, and there are only as many permits as
//! cores, whatever the number of workers, background Read jobs or models with pools of their own.
//!
//! A lone request may use every core: a heavy model runs on its wide session when its request is the
//! only one working and no permit is held. Under load every run takes one thread,
//! the most images/s: a wide run of one request would make the others wait for cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, MutexGuard};

use crate::metrics::CPU_BUDGET_IN_USE;

/// The cores this process may use: the scheduler affinity and the cgroup CPU quota (v1 and v2), as
/// Rust's `available_parallelism` reads them on Linux, so a `--cpus=2` container on a 64-core host
/// gets 2.
pub fn default_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

struct State {
    cores: usize,
    in_use: usize,
    /// Requests (and background Read jobs) being worked on now.
    working: usize,
}

impl State {
    /// Nothing runs model code, at most one request is being worked on (the caller's), and there
    /// is more than one core.
    fn alone(&self) -> bool {
        self.in_use == 0 && self.working <= 1 && self.cores >= 2
    }
}

pub struct CpuBudget {
    state: Mutex<State>,
    freed: Condvar,
}

/// The process's budget; `configure` sets its size once at start.
static BUDGET: LazyLock<CpuBudget> = LazyLock::new(|| CpuBudget::new(default_cores()));

pub fn budget() -> &'static CpuBudget {
    &BUDGET
}

/// Threads held; given back on drop.
#[must_use]
pub struct Held<'a> {
    budget: &'a CpuBudget,
    threads: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        state.in_use -= self.threads;
        CPU_BUDGET_IN_USE.set(state.in_use as i64);
        drop(state);
        self.budget.freed.notify_all();
    }
}

/// A request being worked on, counted while it lives.
#[must_use]
pub struct Working<'a>(&'a CpuBudget);

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.0.lock().working -= 1;
    }
}

impl CpuBudget {
    pub fn new(cores: usize) -> Self {
        CpuBudget {
            state: Mutex::new(State {
                cores: cores.max(1),
                in_use: 0,
                working: 0,
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the number of cores (`--cores`); call it before any model runs.
    pub fn configure(&self, cores: usize) {
        self.lock().cores = cores.max(1);
    }

    pub fn cores(&self) -> usize {
        self.lock().cores
    }

    /// Counts a request as being worked on until the guard drops.
    pub fn working(&self) -> Working<'_> {
        self.lock().working += 1;
        Working(self)
    }

    /// Holds `threads` (at most all cores), waiting until they are free.
    pub fn hold(&self, threads: usize) -> Held<'_> {
        let mut state = self.lock();
        let threads = threads.clamp(1, state.cores);
        while state.in_use + threads > state.cores {
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.in_use += threads;
        CPU_BUDGET_IN_USE.set(state.in_use as i64);
        Held {
            budget: self,
            threads,
        }
    }

    /// Whether the caller's request may use every core now: see [`State::alone`].
    pub fn alone(&self) -> bool {
        self.lock().alone()
    }

    /// Every core, when the caller's request is [`alone`](Self::alone); None otherwise.
    pub fn hold_all_if_alone(&self) -> Option<Held<'_>> {
        let mut state = self.lock();
        if !state.alone() {
            return None;
        }
        state.in_use = state.cores;
        CPU_BUDGET_IN_USE.set(state.in_use as i64);
        Some(Held {
            budget: self,
            threads: state.cores,
        })
    }
}

/// Threads a lone request may spread its independent model runs over: every core when it is
/// [`alone`](CpuBudget::alone), else one (under load each request keeps to one thread).
pub fn spread_workers() -> usize {
    let budget = budget();
    if budget.alone() {
        budget.cores()
    } else {
        1
    }
}

/// Runs `task(i)` for each i in `0..count` on up to `workers` threads, the caller's among them, each
/// taking the next index when it comes free (so tasks listed longest first end close together), and
/// returns the results in index order. The extra threads count as requests of their own while they
/// run, so that no model run among them takes every core.
pub fn spread<T: Send>(count: usize, workers: usize, task: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = workers.clamp(1, count.max(1));
    if workers == 1 {
        return (0..count).map(task).collect();
    }
    let budget = budget();
    let _extra: Vec<Working<'_>> = (1..workers).map(|_| budget.working()).collect();
    let next = AtomicUsize::new(0);
    let done = Mutex::new((0..count).map(|_| None).collect::<Vec<Option<T>>>());
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        let result = task(i);
        done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
    };
    std::thread::scope(|threads| {
        for _ in 1..workers {
            threads.spawn(work);
        }
        work();
    });
    let done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn threads_running_never_exceed_the_cores_however_many_ask() {
        let budget = Arc::new(CpuBudget::new(2));
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (budget, running, peak) = (budget.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let _held = budget.hold(1);
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        running.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(budget.lock().in_use, 0);
    }

    #[test]
    fn spread_tasks_run_side_by_side_never_alone_and_come_back_in_order() {
        let _request = budget().working();
        let (running, peak, saw_alone) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        let results = spread(5, 2, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            if budget().alone() {
                saw_alone.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(std::time::Duration::from_millis(30));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 10
        });
        assert_eq!(results, [0, 10, 20, 30, 40]);
        assert_eq!(peak.load(Ordering::SeqCst), 2, "two workers, never more");
        assert_eq!(
            saw_alone.load(Ordering::SeqCst),
            0,
            "no task may take every core"
        );
        assert_eq!(spread(3, 1, |i| i), [0, 1, 2], "one worker: in order");
        assert!(spread(0, 2, |i| i).is_empty());
    }

    #[test]
    fn a_lone_request_gets_every_core_and_a_busy_machine_one_each() {
        let budget = CpuBudget::new(2);
        {
            let _alone = budget.working();
            let all = budget.hold_all_if_alone().expect("alone and idle");
            assert_eq!(all.threads, 2);
            assert!(budget.hold_all_if_alone().is_none(), "the cores are held");
        }
        let _first = budget.working();
        let _second = budget.working();
        assert!(budget.hold_all_if_alone().is_none(), "two requests share");
        assert_eq!(budget.hold(1).threads, 1);
        assert_eq!(budget.hold(5).threads, 2, "never more than the cores");
        assert!(CpuBudget::new(1).hold_all_if_alone().is_none());
    }
}
