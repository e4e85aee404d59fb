//! Locking helpers shared by the buffers and stores that several threads touch.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex` even if a panicking thread poisoned it: the data is still there, and a
/// filter must keep its records rather than abort.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
