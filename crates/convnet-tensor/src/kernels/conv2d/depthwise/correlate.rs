//! The forward kernels: a correlation of a padded plane with one kernel, by
//! register blocks of output rows (also the stride-1 input gradient).

use super::{fma, src_cols_needed, vectors, Window};

/// `out[r, c] += Σ_{ki,kj} k[ki·KW + kj] · src[(row0 + r·sh + ki·dh)·src_w + col0 + c·sw + kj·dw]`
/// for `out` `[out_h, out_w]`, which starts from `init` in every element if
/// given (else from its current contents). `src` (`src_w` wide) must have
/// [`src_cols_needed`] columns and every row the window reaches.
/// `L` floats per vector, `F`: fused multiply-adds (see [`fma`]).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn correlate<const L: usize, const F: bool>(
    out: &mut [f32],
    init: Option<f32>,
    out_w: usize,
    src: &[f32],
    src_w: usize,
    row0: usize,
    col0: usize,
    k: &[f32],
    win: &Window,
) {
    debug_assert!(src_w >= src_cols_needed::<L>(out_w, col0, win));
    if out_w == 0 {
        return;
    }
    let p = Plane {
        init,
        out_w,
        src,
        src_w,
        row0,
        col0,
        k,
        win,
    };
    // Stride 1 and no vertical dilation: R output rows share each loaded input vector.
    let shared = win.sh == 1 && win.sw == 1 && win.dh == 1;
    match (vectors::<L>(out_w), shared) {
        (1, true) => rows::<L, F, 4, 1>(out, &p),
        (2, true) => rows::<L, F, 4, 2>(out, &p),
        (_, true) => rows::<L, F, 4, 4>(out, &p),
        (1, false) => rows::<L, F, 1, 1>(out, &p),
        (2, false) => rows::<L, F, 1, 2>(out, &p),
        (_, false) => rows::<L, F, 1, 4>(out, &p),
    }
}

/// [`correlate_rows`] as a function of its own per block shape, compiled
/// for the instruction set of `(L, F)` when this CPU runs it (inlining every
/// shape into one function per level made the 7×7 forward 35% slower).
#[inline(always)]
fn rows<const L: usize, const F: bool, const R: usize, const V: usize>(out: &mut [f32], p: &Plane) {
    crate::dispatch!(at L, F; correlate_rows [const R: usize, const V: usize] [R, V] (out: &mut [f32], p: &Plane))
}

/// The arguments of [`correlate`] other than the output.
struct Plane<'a> {
    init: Option<f32>,
    out_w: usize,
    src: &'a [f32],
    src_w: usize,
    row0: usize,
    col0: usize,
    k: &'a [f32],
    win: &'a Window,
}

/// [`correlate`] by blocks of `R` output rows and `V` vectors of `L`
/// columns, the last rows one at a time. The accumulators are `R·V` vectors
/// indexed by constants only, so the compiler keeps them in registers.
#[inline(always)]
fn correlate_rows<const L: usize, const F: bool, const R: usize, const V: usize>(
    out: &mut [f32],
    p: &Plane,
) {
    let out_h = out.len() / p.out_w;
    let full = if R > 1 { out_h / R * R } else { out_h };
    for r0 in (0..full).step_by(R) {
        for c0 in (0..p.out_w).step_by(V * L) {
            if R > 1 {
                block_shared::<L, F, R, V>(out, p, r0, c0);
            } else {
                block_single::<L, F, V>(out, p, r0, c0);
            }
        }
    }
    for r0 in full..out_h {
        for c0 in (0..p.out_w).step_by(V * L) {
            block_single::<L, F, V>(out, p, r0, c0);
        }
    }
}

/// Loads `R` rows of `V` vectors of the output at `(r0, c0)` (zero past the
/// last column), or sets them to `init`.
#[inline(always)]
fn load_out<const L: usize, const R: usize, const V: usize>(
    out: &[f32],
    p: &Plane,
    r0: usize,
    c0: usize,
) -> [[[f32; L]; V]; R] {
    if let Some(init) = p.init {
        return [[[init; L]; V]; R];
    }
    let cols = (V * L).min(p.out_w - c0);
    let mut acc = [[[0.0; L]; V]; R];
    for (r, acc) in acc.iter_mut().enumerate() {
        let row = &out[(r0 + r) * p.out_w + c0..][..cols];
        if cols == V * L {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = row[v * L..(v + 1) * L].try_into().unwrap();
            }
        } else {
            acc.as_flattened_mut()[..cols].copy_from_slice(row);
        }
    }
    acc
}

/// Stores what [`load_out`] loaded.
#[inline(always)]
fn store_out<const L: usize, const R: usize, const V: usize>(
    out: &mut [f32],
    out_w: usize,
    r0: usize,
    c0: usize,
    acc: [[[f32; L]; V]; R],
) {
    let cols = (V * L).min(out_w - c0);
    for (r, acc) in acc.iter().enumerate() {
        let row = &mut out[(r0 + r) * out_w + c0..][..cols];
        if cols == V * L {
            for (v, acc) in acc.iter().enumerate() {
                let dst: &mut [f32; L] = (&mut row[v * L..(v + 1) * L]).try_into().unwrap();
                *dst = *acc;
            }
        } else {
            row.copy_from_slice(&acc.as_flattened()[..cols]);
        }
    }
}

/// `V` vectors of `src` from `start`, `stride` apart.
#[inline(always)]
fn load_src<const L: usize, const V: usize>(
    src: &[f32],
    start: usize,
    stride: usize,
) -> [[f32; L]; V] {
    let mut x = [[0.0; L]; V];
    if stride == 1 {
        let s = &src[start..start + V * L];
        for (v, x) in x.iter_mut().enumerate() {
            *x = s[v * L..(v + 1) * L].try_into().unwrap();
        }
    } else {
        let s = src[start..].iter().step_by(stride);
        for (x, &s) in x.as_flattened_mut().iter_mut().zip(s) {
            *x = s;
        }
    }
    x
}

/// One block of `R` output rows at `(r0, c0)`, stride 1, no vertical
/// dilation: input row `i` of the block feeds output row `r` through kernel
/// row `i − r`, so each loaded input vector serves up to `R` rows.
#[inline(always)]
fn block_shared<const L: usize, const F: bool, const R: usize, const V: usize>(
    out: &mut [f32],
    p: &Plane,
    r0: usize,
    c0: usize,
) {
    let win = p.win;
    let mut acc = load_out::<L, R, V>(out, p, r0, c0);
    for i in 0..R + win.kh - 1 {
        let base = (p.row0 + r0 + i) * p.src_w + p.col0 + c0;
        for kj in 0..win.kw {
            let x = load_src::<L, V>(p.src, base + kj * win.dw, 1);
            for (r, acc) in acc.iter_mut().enumerate() {
                if i >= r && i - r < win.kh {
                    let w = p.k[(i - r) * win.kw + kj];
                    for (acc, x) in acc.iter_mut().zip(&x) {
                        for l in 0..L {
                            acc[l] = fma::<F>(w, x[l], acc[l]);
                        }
                    }
                }
            }
        }
    }
    store_out::<L, R, V>(out, p.out_w, r0, c0, acc);
}

/// One output row at `(r0, c0)`, any stride and dilation.
#[inline(always)]
fn block_single<const L: usize, const F: bool, const V: usize>(
    out: &mut [f32],
    p: &Plane,
    r0: usize,
    c0: usize,
) {
    let win = p.win;
    let [mut acc] = load_out::<L, 1, V>(out, p, r0, c0);
    for ki in 0..win.kh {
        let base = (p.row0 + r0 * win.sh + ki * win.dh) * p.src_w + p.col0 + c0 * win.sw;
        for kj in 0..win.kw {
            let x = load_src::<L, V>(p.src, base + kj * win.dw, win.sw);
            let w = p.k[ki * win.kw + kj];
            for (acc, x) in acc.iter_mut().zip(&x) {
                for l in 0..L {
                    acc[l] = fma::<F>(w, x[l], acc[l]);
                }
            }
        }
    }
    store_out::<L, 1, V>(out, p.out_w, r0, c0, [acc]);
}
