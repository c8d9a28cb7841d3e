//! Per-thread scratch buffers, so that the steady state of a training loop
//! does not allocate.
//!
//! Each thread keeps a stack of buffers. [`with_scratch`] pops one for the
//! duration of a closure and pushes it back afterwards, so nested uses (a
//! kernel's per-band buffers inside its per-call ones, or a rayon worker that
//! steals another convolution's task while it waits) get distinct buffers,
//! and the same nesting gets the same buffers back on the next call (last
//! in, first out). Buffers only grow.

use std::cell::RefCell;

thread_local! {
    static POOL: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a scratch slice of `len` elements. The contents are
/// unspecified (left over from an earlier use): `f` must write before it reads.
pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = POOL
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    POOL.with(|pool| pool.borrow_mut().push(buf));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_uses_get_distinct_buffers_and_keep_them() {
        let (mut outer_ptr, mut inner_ptr) = (std::ptr::null(), std::ptr::null());
        for round in 0..2 {
            with_scratch(4, |a| {
                a.fill(1.0);
                with_scratch(8, |b| {
                    b.fill(2.0);
                    assert_eq!(b.len(), 8);
                    if round == 0 {
                        inner_ptr = b.as_ptr();
                    } else {
                        assert_eq!(inner_ptr, b.as_ptr(), "inner buffer reused");
                    }
                });
                assert_eq!(a, &[1.0; 4]);
                if round == 0 {
                    outer_ptr = a.as_ptr();
                } else {
                    assert_eq!(outer_ptr, a.as_ptr(), "outer buffer reused");
                }
            });
        }
    }
}
