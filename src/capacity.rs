//! The cap on requests that hold a thread for long: open event streams and waiting fetches.
//! Past it a request is refused at once with 503 and `Retry-After`, so short requests such as
//! `/healthz` always find a thread.

use crate::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A counted cap on open event streams plus waiting fetches.
pub struct LongRequests {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One place under the cap, given back when dropped.
pub struct LongRequest {
    open: Arc<AtomicUsize>,
}

impl LongRequests {
    pub fn new(max: usize) -> LongRequests {
        LongRequests {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Takes a place, or refuses with 503 and `Retry-After` when all are taken.
    pub fn take(&self) -> Result<LongRequest, Error> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(LongRequest {
                open: Arc::clone(&self.open),
            }),
            Err(_) => Err(Error::Unavailable {
                retry_after: 5,
                message: format!(
                    "too many open streams and waiting requests (limit {})",
                    self.max
                ),
            }),
        }
    }

    /// Places taken now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for LongRequest {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}
