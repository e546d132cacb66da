//! The one wrapper over ONNX Runtime. The shared library comes from the model pack (the `onnxruntime`
//! wheel) and is loaded at run time, so the build needs no native download. Sessions are pooled per
//! model: `Session::run` needs `&mut`, and one session per worker avoids lock contention. Those
//! sessions share one small intra-op pool (one thread by default: each run on its caller's thread).
//! A heavy model also has one wide session with a pool of every core, which a run takes when the
//! [`cpu_budget`](crate::cpu_budget) says its request is alone; every run holds its threads from
//! that budget, so the machine is never oversubscribed.

use std::path::Path;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use ndarray::{ArrayView, ArrayViewD, Axis};
use ort::environment::{Environment, GlobalThreadPoolOptions};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputs, SessionOutputs};

use crate::cpu_budget::{self, Held};
use crate::metrics::INFERENCE_SECONDS;

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();

/// The first item of a batched output, with the rank the model's code expects.
pub fn first_in_batch<D: ndarray::Dimension>(
    output: ArrayViewD<'_, f32>,
) -> ort::Result<ArrayView<'_, f32, D>> {
    output
        .index_axis_move(Axis(0), 0)
        .into_dimensionality()
        .map_err(|e| ort::Error::new(format!("unexpected output shape: {e}")))
}

/// Loads the ONNX Runtime library once per process, with a shared pool of `threads` intra-op
/// threads (spinning off: idle threads sleep instead of burning the cores the HTTP side needs).
/// Later calls reuse the first environment.
pub fn load(library: &Path, threads: usize) -> Result<&'static Environment> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    // Loading the library comes first: the thread-pool options are made by the library itself.
    let builder = ort::init_from(library)
        .map_err(|e| anyhow!("cannot load ONNX Runtime from {}: {e}", library.display()))?;
    let pool = GlobalThreadPoolOptions::default()
        .with_intra_threads(threads.max(1))
        .and_then(|p| p.with_inter_threads(1))
        .and_then(|p| p.with_spin_control(false))
        .and_then(|p| p.with_flush_to_zero())
        .map_err(|e| anyhow!("cannot configure ONNX Runtime's thread pool: {e}"))?;
    let env = builder
        .with_name("vista")
        .with_global_thread_pool(pool)
        .build()
        .map_err(|e| anyhow!("cannot start ONNX Runtime: {e}"))?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

/// How each session of a model is built.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// Threads of the shared pool the narrow sessions use (a run holds this many from the budget).
    pub shared_threads: usize,
    /// Threads of the one wide session (a pool of its own) besides the narrow ones; none below 2.
    /// Only heavy models get one: a wide session's arena is one more working set held for good
    /// (wide sessions for every model cost 0.8 GiB more settled under load than before, for 2 to
    /// 5% more speed; the heavy ones alone 0.5 GiB).
    pub wide_threads: usize,
    /// ONNX Runtime's memory arena, which keeps each session's largest working set for the next run.
    /// Without it memory goes back after every run, at a cost: 4.0 analyze with all seven features
    /// took 320 ms instead of 213 (p50, 2 workers), and settled at 0.3 GiB instead of 2.4 GiB.
    pub arena: bool,
}

/// A session on the shared pool (`own_threads: None`) or on a pool of its own.
fn build_session(
    env: &Environment,
    path: &Path,
    arena: bool,
    own_threads: Option<usize>,
) -> ort::Result<Session> {
    let builder = Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)?
        .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(arena).build()])?;
    let mut builder = match own_threads {
        Some(threads) => builder
            .with_independent_thread_pool()?
            .with_intra_threads(threads)?
            .with_intra_op_spinning(false)?
            .with_flush_to_zero()?,
        None => builder,
    };
    builder.commit_from_file(path)
}

/// A fixed set of sessions of one model; `run` checks one out, so at most `instances` narrow runs
/// (and one wide run) go at once.
pub struct SessionPool {
    model: String,
    idle: Mutex<Vec<Session>>,
    returned: Condvar,
    /// The wide session, when the model has one and no run holds it.
    wide: Option<Mutex<Option<Session>>>,
    shared_threads: usize,
}

/// Hands the session back (to the narrow set or the wide slot) even when the caller's closure panics,
/// so the pool never shrinks.
struct Checkout<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
    wide: bool,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        match (&self.pool.wide, self.wide) {
            (Some(slot), true) => *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(session),
            _ => {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(session);
                self.pool.returned.notify_one();
            }
        }
    }
}

impl SessionPool {
    pub fn load(
        env: &Environment,
        model: &str,
        path: &Path,
        instances: usize,
        settings: SessionSettings,
    ) -> Result<Self> {
        let build = |own_threads| {
            build_session(env, path, settings.arena, own_threads)
                .with_context(|| format!("loading {}", path.display()))
        };
        let sessions = (0..instances.max(1))
            .map(|_| build(None))
            .collect::<Result<Vec<_>>>()?;
        let wide = match settings.wide_threads {
            threads if threads > 1 => Some(Mutex::new(Some(build(Some(threads))?))),
            _ => None,
        };
        Ok(SessionPool {
            model: model.to_string(),
            idle: Mutex::new(sessions),
            returned: Condvar::new(),
            wide,
            shared_threads: settings.shared_threads.max(1),
        })
    }

    /// The wide session with every core, when the model has one, it is free, and the budget says
    /// this run's request is alone.
    fn checkout_wide(&self) -> Option<(Held<'static>, Checkout<'_>)> {
        let slot = self.wide.as_ref()?;
        let held = cpu_budget::budget().hold_all_if_alone()?;
        let session = slot.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        Some((
            held,
            Checkout {
                pool: self,
                session: Some(session),
                wide: true,
            },
        ))
    }

    /// Runs the model on `inputs` with exclusive use of one session, then lets `read` turn the outputs
    /// into a result while they are still borrowed. Only the model run itself is recorded as inference time.
    pub fn run<'i, 'v: 'i, const N: usize, R>(
        &self,
        inputs: impl Into<SessionInputs<'i, 'v, N>>,
        read: impl FnOnce(&SessionOutputs<'_>) -> ort::Result<R>,
    ) -> Result<R> {
        let (_held, mut checkout) = match self.checkout_wide() {
            Some(wide) => wide,
            None => (
                cpu_budget::budget().hold(self.shared_threads),
                Checkout {
                    pool: self,
                    session: Some(self.checkout()),
                    wide: false,
                },
            ),
        };
        let session = checkout.session.as_mut().expect("just checked out");
        let started = Instant::now();
        let outputs = {
            let _flushing = denormals::flushed_on_this_thread();
            session.run(inputs)
        };
        INFERENCE_SECONDS
            .with_label_values(&[&self.model])
            .observe(started.elapsed().as_secs_f64());
        outputs
            .and_then(|outputs| read(&outputs))
            .map_err(|e| anyhow!("{} inference failed: {e}", self.model))
    }

    /// Runs the model on one input tensor (of any element type and rank) and returns one output,
    /// flattened.
    pub fn run_flat<T, D>(
        &self,
        input: &str,
        tensor: &ndarray::Array<T, D>,
        output: &str,
    ) -> Result<Vec<f32>>
    where
        T: ort::value::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static,
        D: ndarray::Dimension + 'static,
    {
        let inputs = ort::inputs![input => ort::value::TensorRef::from_array_view(tensor)?];
        self.run(inputs, |outputs| {
            Ok(outputs[output]
                .try_extract_array::<f32>()?
                .iter()
                .copied()
                .collect())
        })
    }

    /// A custom metadata entry of the model (e.g. a recogniser's character list).
    pub fn custom_metadata(&self, key: &str) -> Result<Option<String>> {
        let checkout = Checkout {
            pool: self,
            session: Some(self.checkout()),
            wide: false,
        };
        let session = checkout.session.as_ref().expect("just checked out");
        let metadata = session
            .metadata()
            .map_err(|e| anyhow!("{} metadata: {e}", self.model))?;
        Ok(metadata.custom(key))
    }

    fn checkout(&self) -> Session {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(session) = idle.pop() {
                return session;
            }
            idle = self.returned.wait(idle).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Subnormal floats (below 1.2e-38) take a slow microcode path on x86: in PP-OCR's text detector
/// the activations of two 1x1 convolutions are mostly subnormal, and treating them as zero makes
/// the whole model a third faster with the same output. ONNX Runtime sets the flags on its pool's
/// threads; the thread that calls `run` computes too, so it gets them here for the run's length.
mod denormals {
    /// The flags as they were, put back on drop.
    pub struct Flushed(#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] u32);

    #[cfg(target_arch = "x86_64")]
    pub fn flushed_on_this_thread() -> Flushed {
        /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6).
        const FTZ_DAZ: u32 = 0x8040;
        let mut old = 0u32;
        // SAFETY: reads and writes only this thread's SSE control register.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut old, options(nostack));
            std::arch::asm!("ldmxcsr [{}]", in(reg) &(old | FTZ_DAZ), options(nostack));
        }
        Flushed(old)
    }

    #[cfg(target_arch = "x86_64")]
    impl Drop for Flushed {
        fn drop(&mut self) {
            // SAFETY: restores the value read from this thread's register.
            unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &self.0, options(nostack)) };
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn flushed_on_this_thread() -> Flushed {
        Flushed(0)
    }

    #[cfg(all(test, target_arch = "x86_64"))]
    mod tests {
        use std::hint::black_box;

        #[test]
        fn subnormal_results_are_zero_only_while_flushed() {
            let half_of_smallest_normal = || black_box(f32::MIN_POSITIVE) * black_box(0.5);
            assert!(half_of_smallest_normal() > 0.0, "subnormal before");
            {
                let _flushing = super::flushed_on_this_thread();
                assert_eq!(half_of_smallest_normal(), 0.0);
            }
            assert!(half_of_smallest_normal() > 0.0, "the flags are put back");
        }
    }
}
