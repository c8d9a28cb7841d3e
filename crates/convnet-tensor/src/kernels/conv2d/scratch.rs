//! Per-thread scratch buffers, so that the steady state of a training loop
//! does not allocate.
//!
//! A buffer is *taken* out of the thread-local slot for the duration of a
//! closure and put back afterwards. A nested use on the same thread (a rayon
//! worker that steals another convolution's task while it waits) finds the
//! slot empty and allocates its own buffer instead of panicking on a double
//! borrow; the larger of the two buffers is kept.

use std::cell::Cell;

thread_local! {
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with a scratch slice of `len` elements. The contents are
/// unspecified (left over from an earlier use): `f` must write before it reads.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(Cell::take);
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|slot| {
        let other = slot.take();
        slot.set(if other.len() > buf.len() { other } else { buf });
    });
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_use_does_not_alias_or_panic() {
        with_scratch(4, |a| {
            a.fill(1.0);
            with_scratch(8, |b| {
                b.fill(2.0);
                assert_eq!(b.len(), 8);
            });
            assert_eq!(a, &[1.0; 4]);
        });
        // The larger buffer was kept and is reused.
        with_scratch(8, |c| assert_eq!(c.len(), 8));
    }
}
