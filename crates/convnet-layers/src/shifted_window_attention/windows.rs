//! The window geometry of [`super::ShiftedWindowAttention`]: padding,
//! cyclic shift and partition of a `[H, W]` map into windows, the masks of
//! shifted windows and the relative position index.
//!
//! Coordinates: the map is padded at the bottom and right to `[pH, pW]`,
//! multiples of the window `[wh, ww]`, then rolled by `(−sh, −sw)` (the
//! pixel at rolled position `(py, px)` comes from padded position
//! `((py + sh) mod pH, (px + sw) mod pW)`), then cut into `pH/wh × pW/ww`
//! windows, row-major. A *windowed position* is `window · T + token`,
//! `T = wh·ww`, tokens row-major inside their window.

/// The additive mask between tokens of different regions of a shifted
/// window, as torchvision's `shifted_window_attention` writes it (not
/// `−∞`: a row of a window made only of padding stays finite).
pub(crate) const MASKED: f32 = -100.0;

/// Padding, shift and windows of one `[H, W]` map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowGeometry {
    /// Map height and width.
    pub h: usize,
    pub w: usize,
    /// Window height and width.
    pub wh: usize,
    pub ww: usize,
    /// Padded height and width: the next multiples of the window.
    pub ph: usize,
    pub pw: usize,
    /// The shift applied, per axis: the configured one, or 0 on an axis
    /// where one window covers the whole padded map.
    pub sh: usize,
    pub sw: usize,
}

impl WindowGeometry {
    /// The geometry of an `h × w` map with windows `window` and a
    /// configured shift `shift` (each smaller than the window).
    pub fn new(h: usize, w: usize, window: (usize, usize), shift: (usize, usize)) -> Self {
        let (wh, ww) = window;
        let ph = h.div_ceil(wh) * wh;
        let pw = w.div_ceil(ww) * ww;
        WindowGeometry {
            h,
            w,
            wh,
            ww,
            ph,
            pw,
            sh: if wh >= ph { 0 } else { shift.0 },
            sw: if ww >= pw { 0 } else { shift.1 },
        }
    }

    /// Tokens per window, `wh · ww`.
    pub fn tokens(&self) -> usize {
        self.wh * self.ww
    }

    /// Windows per map, `(pH / wh) · (pW / ww)`.
    pub fn windows(&self) -> usize {
        (self.ph / self.wh) * (self.pw / self.ww)
    }

    /// Whether the windows are shifted (and masked).
    pub fn shifted(&self) -> bool {
        self.sh + self.sw > 0
    }

    /// The rolled padded coordinates `(py, px)` of windowed position `p`.
    fn rolled(&self, p: usize) -> (usize, usize) {
        let (window, token) = (p / self.tokens(), p % self.tokens());
        let per_row = self.pw / self.ww;
        let (by, bx) = (window / per_row, window % per_row);
        (
            by * self.wh + token / self.ww,
            bx * self.ww + token % self.ww,
        )
    }

    /// For every windowed position (`windows · T` of them), the pixel
    /// `y · W + x` of the map it holds, or `None` for padding.
    pub fn sources(&self) -> Vec<Option<usize>> {
        (0..self.windows() * self.tokens())
            .map(|p| {
                let (py, px) = self.rolled(p);
                let (y, x) = ((py + self.sh) % self.ph, (px + self.sw) % self.pw);
                (y < self.h && x < self.w).then_some(y * self.w + x)
            })
            .collect()
    }

    /// The additive attention masks of shifted windows, `[windows, T, T]`:
    /// [`MASKED`] between tokens that come from different regions of the
    /// rolled map (a region per axis: `[0, P − window)`, `[P − window,
    /// P − shift)`, `[P − shift, P)`), 0 within a region; `None` without
    /// shift.
    pub fn mask(&self) -> Option<Vec<f32>> {
        if !self.shifted() {
            return None;
        }
        let region = |coord: usize, padded: usize, window: usize, shift: usize| -> usize {
            if shift == 0 || coord < padded - window {
                0
            } else if coord < padded - shift {
                1
            } else {
                2
            }
        };
        let t = self.tokens();
        let mut mask = vec![0.0f32; self.windows() * t * t];
        for (window, m) in mask.chunks_exact_mut(t * t).enumerate() {
            let label: Vec<usize> = (0..t)
                .map(|token| {
                    let (py, px) = self.rolled(window * t + token);
                    3 * region(py, self.ph, self.wh, self.sh)
                        + region(px, self.pw, self.ww, self.sw)
                })
                .collect();
            for (i, row) in m.chunks_exact_mut(t).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    if label[i] != label[j] {
                        *v = MASKED;
                    }
                }
            }
        }
        Some(mask)
    }
}

/// The relative position index of a `wh × ww` window, `[T · T]`: for
/// tokens `i = (y1, x1)` and `j = (y2, x2)`, the row of the bias table
/// `(y1 − y2 + wh − 1) · (2·ww − 1) + (x1 − x2 + ww − 1)` (torchvision's
/// `relative_position_index`, flattened).
pub(crate) fn relative_position_index(wh: usize, ww: usize) -> Vec<usize> {
    let t = wh * ww;
    let mut index = Vec::with_capacity(t * t);
    for i in 0..t {
        let (y1, x1) = (i / ww, i % ww);
        for j in 0..t {
            let (y2, x2) = (j / ww, j % ww);
            index.push((y1 + wh - 1 - y2) * (2 * ww - 1) + (x1 + ww - 1 - x2));
        }
    }
    index
}

/// Moves rows of `c` values between a map (`[N, H·W, C]`, `hw = H·W`) and
/// its windows (`[N, windows·T, C]`, one windowed position per entry of
/// `sources`): with `to_windows`, every windowed position gets its pixel
/// (zeros for padding); otherwise every pixel gets its windowed row back
/// (padding dropped). Every pixel is held by exactly one windowed
/// position, so each direction is the other's adjoint.
pub(crate) fn move_rows(
    src: &[f32],
    sources: &[Option<usize>],
    n: usize,
    hw: usize,
    c: usize,
    to_windows: bool,
) -> Vec<f32> {
    let (map_len, windows_len) = (hw * c, sources.len() * c);
    let (src_len, dst_len) = if to_windows {
        (map_len, windows_len)
    } else {
        (windows_len, map_len)
    };
    let mut out = vec![0.0f32; n * dst_len];
    for (img, dst) in out.chunks_exact_mut(dst_len).enumerate() {
        let src = &src[img * src_len..(img + 1) * src_len];
        for (position, pixel) in sources.iter().enumerate() {
            if let &Some(pixel) = pixel {
                let (from, to) = if to_windows {
                    (pixel, position)
                } else {
                    (position, pixel)
                };
                dst[to * c..(to + 1) * c].copy_from_slice(&src[from * c..(from + 1) * c]);
            }
        }
    }
    out
}
