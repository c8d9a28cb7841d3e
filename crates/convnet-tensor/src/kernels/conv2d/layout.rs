//! Layout changes feeding sgemm: blocked transposes.
//!
//! sgemm packs its left operand fastest when it is stored column-major and
//! its right operand when it is stored row-major. The weight gradient
//! contracts over output positions, the contiguous axis of both `dY` and the
//! column matrix, so the kernels transpose those operands (band by band,
//! while they are in cache) before the product.

/// Tile edge of the blocked transpose: 16 floats, one AVX-512 register or
/// two AVX2 registers per tile row.
const TILE: usize = 16;

/// `dst[c·dst_stride + r] = src[r·src_stride + c]` for `r < rows`, `c < cols`:
/// the transpose of a `rows × cols` block of a row-major matrix whose rows are
/// `src_stride` apart, written as a `cols × rows` block whose rows are
/// `dst_stride` apart.
pub(super) fn transpose(
    dst: &mut [f32],
    dst_stride: usize,
    src: &[f32],
    src_stride: usize,
    rows: usize,
    cols: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    debug_assert!(src.len() >= (rows - 1) * src_stride + cols);
    debug_assert!(dst.len() >= (cols - 1) * dst_stride + rows);
    let full_r = rows / TILE * TILE;
    let full_c = cols / TILE * TILE;
    for r0 in (0..full_r).step_by(TILE) {
        for c0 in (0..full_c).step_by(TILE) {
            let mut t = [[0.0f32; TILE]; TILE];
            for (i, t_row) in t.iter_mut().enumerate() {
                let s: &[f32; TILE] = src[(r0 + i) * src_stride + c0..][..TILE]
                    .try_into()
                    .unwrap();
                *t_row = *s;
            }
            for j in 0..TILE {
                let d: &mut [f32; TILE] = (&mut dst[(c0 + j) * dst_stride + r0..][..TILE])
                    .try_into()
                    .unwrap();
                for i in 0..TILE {
                    d[i] = t[i][j];
                }
            }
        }
    }
    // Edges: the last columns of the tiled rows, then the last rows.
    for r in 0..full_r {
        for c in full_c..cols {
            dst[c * dst_stride + r] = src[r * src_stride + c];
        }
    }
    for r in full_r..rows {
        for c in 0..cols {
            dst[c * dst_stride + r] = src[r * src_stride + c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_blocks_of_any_size() {
        for &(rows, cols) in &[(1, 1), (3, 5), (16, 16), (17, 33), (40, 18), (64, 9)] {
            let (ss, ds) = (cols + 3, rows + 2);
            let src: Vec<f32> = (0..rows * ss).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; cols * ds];
            transpose(&mut dst, ds, &src, ss, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * ds + r], src[r * ss + c], "{rows}x{cols} at {r},{c}");
                }
            }
        }
    }
}
