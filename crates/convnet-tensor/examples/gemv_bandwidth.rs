//! Memory bandwidth reached by the dense layer's matrix-vector product
//! (`gemv_parallel`) against `gemm_parallel`, on AlexNet's and VGG's first
//! classifier layers.
//!
//! `cargo run --release -p convnet-tensor --example gemv_bandwidth [rows...]`

use std::time::Instant;

use rayon::prelude::*;

use convnet_tensor::kernels::gemm::{gemm_parallel, Trans};
use convnet_tensor::kernels::gemv::gemv_parallel;

/// Median seconds of `reps` runs of `f`.
fn median_s(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn main() {
    let rows: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("rows: integers"))
        .collect();
    let rows = if rows.is_empty() { vec![1, 4] } else { rows };
    println!("threads {}", rayon::current_num_threads());
    for (name, inp, out) in [("alexnet.fc6", 9216, 4096), ("vgg16.fc6", 25088, 4096)] {
        let w: Vec<f32> = (0..inp * out).map(|i| (i % 7) as f32 * 0.01).collect();
        let gb = (w.len() * 4) as f64 / 1e9;
        // The reference: a parallel read of the same weights (an xor of
        // their bits, which the compiler vectorises).
        let mut total = 0u32;
        let t_sum = median_s(7, || {
            total = w
                .par_chunks(1 << 20)
                .map(|c| c.iter().fold(0u32, |a, v| a ^ v.to_bits()))
                .reduce(|| 0, |a, b| a ^ b);
        });
        println!(
            "{name} [{out}, {inp}]: parallel read {:.2} ms {:.1} GB/s (xor {total:x})",
            t_sum * 1e3,
            gb / t_sum
        );
        for &m in &rows {
            let x: Vec<f32> = (0..m * inp).map(|i| (i % 5) as f32 * 0.1).collect();
            let mut y = vec![0.0f32; m * out];
            for (form, tw) in [("x·Wᵀ", Trans::Yes), ("x·W", Trans::No)] {
                // Trans::No reads W as [in, out]: the backward's g · W shape.
                let (n, k) = match tw {
                    Trans::Yes => (out, inp),
                    Trans::No => (inp, out),
                };
                let mut y2 = vec![0.0f32; m * n];
                let y = if tw == Trans::Yes { &mut y } else { &mut y2 };
                let t_gemv = median_s(7, || {
                    gemv_parallel(y, &x[..m * k], &w, tw, m, n, k, 1.0, 0.0).unwrap()
                });
                let t_gemm = median_s(3, || {
                    gemm_parallel(y, &x[..m * k], Trans::No, &w, tw, m, n, k, 1.0, 0.0).unwrap()
                });
                println!(
                    "{name} {form} m={m}: gemv {:.2} ms {:.1} GB/s | gemm {:.2} ms {:.1} GB/s",
                    t_gemv * 1e3,
                    gb / t_gemv,
                    t_gemm * 1e3,
                    gb / t_gemm
                );
            }
            // The weight gradient dW[out, in] += gᵀ[out, m] · x[m, in]: a
            // rank-m update, dW read and written once.
            let mut dw = vec![0.0f32; w.len()];
            let g: Vec<f32> = (0..m * out).map(|i| (i % 3) as f32 * 0.1).collect();
            let mut gt = vec![0.0f32; m * out];
            for (r, row) in g.chunks_exact(out).enumerate() {
                for (o, v) in row.iter().enumerate() {
                    gt[o * m + r] = *v;
                }
            }
            let x = &x[..m * inp];
            let t_gemv = median_s(5, || {
                gemv_parallel(&mut dw, &gt, x, Trans::No, out, inp, m, 1.0, 1.0).unwrap()
            });
            let t_gemm = median_s(3, || {
                gemm_parallel(&mut dw, &g, Trans::Yes, x, Trans::No, out, inp, m, 1.0, 1.0).unwrap()
            });
            println!(
                "{name} dW += gᵀ·x m={m}: gemv {:.2} ms {:.1} GB/s | gemm {:.2} ms {:.1} GB/s (read + write)",
                t_gemv * 1e3,
                2.0 * gb / t_gemv,
                t_gemm * 1e3,
                2.0 * gb / t_gemm
            );
        }
    }
}
