//! The decoded-pixel budget every worker shares: an image or page is decoded (or rendered) only once
//! the pixels it will hold are free in the budget, so the memory decoded images take is bounded by
//! configuration, not by what clients send. A request that must wait holds its worker and so waits
//! in the queue; when the queue is full the server answers 429. Large images also hand their memory
//! back to the system once released (glibc keeps freed heap memory otherwise).

use std::sync::{Arc, Condvar, Mutex};

/// A permit this large (16 megapixels: a 4000x4000 photo) returns freed memory to the system when
/// released; smaller ones are left to the allocator's reuse.
const TRIM_FROM_PIXELS: u64 = 16_000_000;

#[derive(Debug)]
pub struct PixelBudget {
    total: u64,
    free: Mutex<u64>,
    released: Condvar,
}

/// Pixels held from the budget until dropped.
#[derive(Debug)]
pub struct PixelPermit {
    budget: Arc<PixelBudget>,
    pixels: u64,
}

impl PixelBudget {
    pub fn new(total_pixels: u64) -> Arc<Self> {
        Arc::new(PixelBudget {
            total: total_pixels,
            free: Mutex::new(total_pixels),
            released: Condvar::new(),
        })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Takes `pixels` from the budget, waiting until they are free; None if they exceed the whole
    /// budget and so could never be had.
    pub fn acquire(self: &Arc<Self>, pixels: u64) -> Option<PixelPermit> {
        if pixels > self.total {
            return None;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free < pixels {
            free = self.released.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= pixels;
        crate::metrics::DECODE_PIXELS_IN_USE.set((self.total - *free) as i64);
        Some(PixelPermit {
            budget: Arc::clone(self),
            pixels,
        })
    }
}

impl Drop for PixelPermit {
    fn drop(&mut self) {
        let mut free = self.budget.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += self.pixels;
        crate::metrics::DECODE_PIXELS_IN_USE.set((self.budget.total - *free) as i64);
        drop(free);
        self.budget.released.notify_all();
        if self.pixels >= TRIM_FROM_PIXELS {
            return_freed_memory();
        }
    }
}

/// Hands freed heap pages back to the system (glibc only; other allocators return them themselves).
/// glibc keeps a large image's freed buffers in its heap (the resident size stayed at 3.9 GiB after a
/// 16k image); trimming after large permits gives them back. Making every allocation of 1 MiB or more
/// its own mapping did the same but cost 4% of a 4.0 analyze's latency in page faults.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn permits_wait_for_released_pixels_and_oversized_requests_are_refused() {
        let budget = PixelBudget::new(100);
        assert!(budget.acquire(101).is_none(), "more than the whole budget");
        let first = budget.acquire(70).unwrap();
        let (sender, received) = std::sync::mpsc::channel();
        let waiting = {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || {
                let permit = budget.acquire(50).unwrap();
                sender.send(()).unwrap();
                permit
            })
        };
        assert!(
            received.recv_timeout(Duration::from_millis(200)).is_err(),
            "50 of the 30 free pixels must wait"
        );
        drop(first);
        received.recv_timeout(Duration::from_secs(5)).unwrap();
        let second = waiting.join().unwrap();
        assert_eq!(*budget.free.lock().unwrap(), 50);
        drop(second);
        assert_eq!(*budget.free.lock().unwrap(), 100);
    }
}
