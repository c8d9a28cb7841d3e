//! The Winograd transforms of F(m×m, 3×3) (Lavin & Gray, "Fast Algorithms
//! for Convolutional Neural Networks", 2016) and the loops that apply them
//! to rows of tiles.
//!
//! With `d` an `α × α` input tile (`α = m + 2`), `g` a 3×3 filter and
//! `Bᵀ`, `G`, `Aᵀ` the variant's matrices, the `m × m` output tile of the
//! cross-correlation is
//!
//! ```text
//! Y = Aᵀ · [(G·g·Gᵀ) ⊙ (Bᵀ·d·B)] · A
//! ```
//!
//! Summed over input channels, the element-wise products become `α²`
//! matrix products (see `mod.rs`). Each matrix is applied here as a 1-D
//! transform of `α` (or 3) values ([`Variant`]), and the loops run it over
//! whole rows of tiles at once, so that the innermost loop runs over tiles
//! (or output channels) and vectorises.
//!
//! # Hot loops
//!
//! [`input_columns`], [`input_tiles`], [`output_tiles`] and
//! [`kernel_row`]: plain loops over slices (`*_at`, `#[inline(always)]`),
//! compiled once per SIMD level and dispatched on the level in use
//! ([`crate::dispatch!`]).

/// One Winograd variant F(M×M, 3×3), `A = M + 2`: its three 1-D transforms.
pub(crate) trait Variant<const M: usize, const A: usize> {
    /// `Bᵀ · d` of a column of `A` input values.
    fn input(d: [f32; A]) -> [f32; A];
    /// `Aᵀ · v` of a column of `A` products: `M` outputs.
    fn output(v: [f32; A]) -> [f32; M];
    /// `G · g` of a column of 3 filter taps.
    fn kernel(g: [f32; 3]) -> [f32; A];
}

/// F(2×2, 3×3): 16 products per 4 outputs (2.25× fewer multiplications than
/// direct); transforms with coefficients 0, ±1 and ½, so its rounding error
/// stays close to the direct sum.
pub(crate) struct F2;

impl Variant<2, 4> for F2 {
    #[inline(always)]
    fn input(d: [f32; 4]) -> [f32; 4] {
        [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
    }

    #[inline(always)]
    fn output(v: [f32; 4]) -> [f32; 2] {
        [v[0] + v[1] + v[2], v[1] - v[2] - v[3]]
    }

    #[inline(always)]
    fn kernel(g: [f32; 3]) -> [f32; 4] {
        let half = 0.5 * (g[0] + g[2]);
        [g[0], half + 0.5 * g[1], half - 0.5 * g[1], g[2]]
    }
}

/// F(4×4, 3×3): 36 products per 16 outputs (4× fewer multiplications than
/// direct); coefficients up to 8 and 1/24, so its rounding error is several
/// times that of F(2×2, 3×3).
pub(crate) struct F4;

impl Variant<4, 6> for F4 {
    #[inline(always)]
    fn input(d: [f32; 6]) -> [f32; 6] {
        let a = d[4] - 4.0 * d[2];
        let b = d[3] - 4.0 * d[1];
        let c = d[4] - d[2];
        let e = 2.0 * (d[3] - d[1]);
        [
            4.0 * d[0] - 5.0 * d[2] + d[4],
            a + b,
            a - b,
            c + e,
            c - e,
            4.0 * d[1] - 5.0 * d[3] + d[5],
        ]
    }

    #[inline(always)]
    fn output(v: [f32; 6]) -> [f32; 4] {
        let (s1, d1) = (v[1] + v[2], v[1] - v[2]);
        let (s2, d2) = (v[3] + v[4], v[3] - v[4]);
        [
            v[0] + s1 + s2,
            d1 + 2.0 * d2,
            s1 + 4.0 * s2,
            d1 + 8.0 * d2 + v[5],
        ]
    }

    #[inline(always)]
    fn kernel(g: [f32; 3]) -> [f32; 6] {
        let (s, m) = (g[0] + g[2], g[1]);
        let (q, h) = (g[0] / 4.0 + g[2], g[1] / 2.0);
        [
            g[0] / 4.0,
            -(s + m) / 6.0,
            -(s - m) / 6.0,
            (q + h) / 6.0,
            (q - h) / 6.0,
            g[2],
        ]
    }
}

/// Splits `buf` into `N` consecutive slices of `len` (the caller sizes it).
#[inline(always)]
pub(crate) fn split_rows<const N: usize>(buf: &mut [f32], len: usize) -> [&mut [f32]; N] {
    let mut rows = buf.chunks_exact_mut(len.max(1));
    std::array::from_fn(|_| match rows.next() {
        Some(row) => &mut row[..len],
        None => unreachable!("split_rows: buffer sized for {N} rows of {len}"),
    })
}

/// [`input_columns_at`] compiled for the SIMD level in use.
pub(crate) fn input_columns<V: Variant<M, A>, const M: usize, const A: usize>(
    out: &mut [f32],
    rows: &[f32],
    wp: usize,
) {
    crate::dispatch!(input_columns_at [V: Variant<M, A>, const M: usize, const A: usize] [V, M, A] (out: &mut [f32], rows: &[f32], wp: usize))
}

/// Vertical input transform of `A` padded input rows `rows` (each `wp`
/// long): `out[a][col] = Σ_i Bᵀ[a][i] · rows[i][col]`. Hot.
#[inline(always)]
fn input_columns_at<
    const _L: usize,
    const _F: bool,
    V: Variant<M, A>,
    const M: usize,
    const A: usize,
>(
    out: &mut [f32],
    rows: &[f32],
    wp: usize,
) {
    let src: [&[f32]; A] = std::array::from_fn(|i| &rows[i * wp..][..wp]);
    let mut dst = split_rows::<A>(out, wp);
    for col in 0..wp {
        let t = V::input(std::array::from_fn(|i| src[i][col]));
        for (d, v) in dst.iter_mut().zip(t) {
            d[col] = v;
        }
    }
}

/// [`input_tiles_at`] compiled for the SIMD level in use.
pub(crate) fn input_tiles<V: Variant<M, A>, const M: usize, const A: usize>(
    out: [&mut [f32]; A],
    row: &[f32],
    tiles: usize,
) {
    crate::dispatch!(input_tiles_at [V: Variant<M, A>, const M: usize, const A: usize] [V, M, A] (out: [&mut [f32]; A], row: &[f32], tiles: usize))
}

/// Horizontal input transform of one row `row` of vertically transformed
/// values: for the `tiles` tiles of the row (tile `t` starts at column
/// `t·M`), `out[b][t] = Σ_j Bᵀ[b][j] · row[t·M + j]`. Hot.
#[inline(always)]
fn input_tiles_at<
    const _L: usize,
    const _F: bool,
    V: Variant<M, A>,
    const M: usize,
    const A: usize,
>(
    out: [&mut [f32]; A],
    row: &[f32],
    tiles: usize,
) {
    let row = &row[..tiles * M + A - M];
    let mut out = out.map(|o| &mut o[..tiles]);
    for t in 0..tiles {
        let d: &[f32; A] = row[t * M..][..A].try_into().expect("A values");
        let v = V::input(*d);
        for (o, v) in out.iter_mut().zip(v) {
            o[t] = v;
        }
    }
}

/// [`output_tiles_at`] compiled for the SIMD level in use.
pub(crate) fn output_tiles<V: Variant<M, A>, const M: usize, const A: usize>(
    out: &mut [&mut [f32]; M],
    prod: &[[&[f32]; A]; A],
    tiles: usize,
    bias: f32,
) {
    crate::dispatch!(output_tiles_at [V: Variant<M, A>, const M: usize, const A: usize] [V, M, A] (out: &mut [&mut [f32]; M], prod: &[[&[f32]; A]; A], tiles: usize, bias: f32))
}

/// Output transform of one row of tiles for one output channel: `prod[a][b]`
/// holds the products of position `(a, b)` for the `tiles` tiles; writes
/// `Aᵀ·P·A + bias` into the `M` output rows `out` (each at least
/// `tiles·M` long: the caller pads the last tile). Hot.
#[inline(always)]
fn output_tiles_at<
    const _L: usize,
    const _F: bool,
    V: Variant<M, A>,
    const M: usize,
    const A: usize,
>(
    out: &mut [&mut [f32]; M],
    prod: &[[&[f32]; A]; A],
    tiles: usize,
    bias: f32,
) {
    let prod = prod.map(|r| r.map(|p| &p[..tiles]));
    for row in out.iter_mut() {
        assert!(row.len() >= tiles * M, "output row too short for the tiles");
    }
    for t in 0..tiles {
        // Vertical: s[i][b] = Σ_a Aᵀ[i][a] · P[a][b].
        let cols: [[f32; M]; A] =
            std::array::from_fn(|b| V::output(std::array::from_fn(|a| prod[a][b][t])));
        for (i, row) in out.iter_mut().enumerate() {
            let y = V::output(std::array::from_fn(|b| cols[b][i]));
            let dst: &mut [f32; M] = (&mut row[t * M..][..M]).try_into().expect("M values");
            for (d, y) in dst.iter_mut().zip(y) {
                *d = y + bias;
            }
        }
    }
}

/// [`kernel_row_at`] compiled for the SIMD level in use.
pub(crate) fn kernel_row<V: Variant<M, A>, const M: usize, const A: usize>(
    out: &mut [[&mut [f32]; A]; A],
    taps: &[&[f32]; 9],
    o: usize,
) {
    crate::dispatch!(kernel_row_at [V: Variant<M, A>, const M: usize, const A: usize] [V, M, A] (out: &mut [[&mut [f32]; A]; A], taps: &[&[f32]; 9], o: usize))
}

/// Kernel transform of one input channel for every output channel:
/// `taps[k]` holds tap `k` (row-major 3×3) of the `o` filters, and
/// `out[a][b][o] = (G·g_o·Gᵀ)[a][b]`. Hot when weights are large and the
/// images small.
#[inline(always)]
fn kernel_row_at<
    const _L: usize,
    const _F: bool,
    V: Variant<M, A>,
    const M: usize,
    const A: usize,
>(
    out: &mut [[&mut [f32]; A]; A],
    taps: &[&[f32]; 9],
    o: usize,
) {
    let taps = taps.map(|t| &t[..o]);
    for k in 0..o {
        // Columns of G·g (3 columns of A), then rows of (G·g)·Gᵀ.
        let gg: [[f32; A]; 3] =
            std::array::from_fn(|l| V::kernel([taps[l][k], taps[3 + l][k], taps[6 + l][k]]));
        for (a, row) in out.iter_mut().enumerate() {
            let u = V::kernel([gg[0][a], gg[1][a], gg[2][a]]);
            for (dst, u) in row.iter_mut().zip(u) {
                dst[k] = u;
            }
        }
    }
}
