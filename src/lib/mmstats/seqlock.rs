//! The seqlock over a slot of atomic words in a shared mapping (protocol in
//! [`super::layout`]).
//!
//! Every access is an atomic load or store on an aligned 8-byte word, so a reader never
//! forms a plain reference to memory another process writes.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::layout::word;

/// Read attempts that only spin before the reader starts yielding to the writers.
const SPINS: u64 = 100;
/// How long a reader keeps trying before it reports a slot as inconsistent. Writers hold a
/// slot for nanoseconds, so only writers updating it back to back for this long (with the
/// reader's copy never fitting between two updates) exhaust it.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// Takes the slot's sequence counter for one writer that no other thread competes with.
/// Returns the odd value to pass to [`end_write`].
#[inline]
pub(crate) fn begin_write_exclusive(slot: &[AtomicU64]) -> u64 {
    let seq = &slot[word::SEQ];
    let odd = seq.load(Ordering::Relaxed) | 1;
    seq.store(odd, Ordering::Relaxed);
    fence(Ordering::Release);
    odd
}

/// Takes the slot's sequence counter against other writer threads: waits while it is odd
/// and claims it with a compare-and-swap. Returns the odd value to pass to [`end_write`].
#[inline]
pub(crate) fn begin_write_shared(slot: &[AtomicU64]) -> u64 {
    let seq = &slot[word::SEQ];
    let mut spins = 0u32;
    loop {
        let current = seq.load(Ordering::Relaxed);
        if current & 1 == 0
            && seq
                .compare_exchange_weak(current, current + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            fence(Ordering::Release);
            return current + 1;
        }
        // The holder may have been preempted: after a short spin, give it the CPU.
        spins += 1;
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Publishes the words written since `begin_write_*` returned `odd`.
#[inline]
pub(crate) fn end_write(slot: &[AtomicU64], odd: u64) {
    slot[word::SEQ].store(odd.wrapping_add(1), Ordering::Release);
}

/// Copies the slot's words into `out` (resized to the slot, so word indexes match) until
/// a copy is whole. `extent` says how many leading words matter, given the slot (it may
/// load words that the copy then checks): words past it are reported as zero. Returns
/// false if writers kept the slot busy for [`MAX_WAIT`]; `out` then holds the last copy.
pub(crate) fn read(
    slot: &[AtomicU64],
    out: &mut Vec<u64>,
    extent: impl Fn(&[AtomicU64]) -> usize,
) -> bool {
    let seq = &slot[word::SEQ];
    out.clear();
    out.resize(slot.len(), 0);
    let mut started = None;
    for attempt in 0u64.. {
        // A Relaxed load and an Acquire fence: readers map the file read-only, where only
        // Relaxed atomic loads are guaranteed to work.
        let before = seq.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if before & 1 == 0 {
            let len = extent(slot).clamp(1, slot.len());
            out[word::SEQ] = before;
            for (dst, src) in out[1..len].iter_mut().zip(&slot[1..len]) {
                *dst = src.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if seq.load(Ordering::Relaxed) == before {
                out[len..].fill(0);
                return true;
            }
        }
        if attempt < SPINS {
            std::hint::spin_loop();
            continue;
        }
        // Writers are busy: let them run, and give up only after MAX_WAIT.
        let started = *started.get_or_insert_with(Instant::now);
        if started.elapsed() > MAX_WAIT {
            break;
        }
        std::thread::yield_now();
    }
    for (dst, src) in out.iter_mut().zip(slot) {
        *dst = src.load(Ordering::Relaxed);
    }
    false
}
