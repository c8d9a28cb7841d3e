//! `convnet show activations`: the ReLU and GELU curves of the lecture's
//! annex ("Fonctions ReLU et GELU"), computed by the layers of this crate.

use std::path::Path;

use convnet_layers::{Layer, ReLU, GELU};
use convnet_tensor::Tensor;
use convnet_train::plot::{register_font, save_png, FONT};
use plotters::prelude::*;

use crate::app::{AppError, Result};

/// Width and height of the picture in pixels.
pub const SIZE: (u32, u32) = (800, 500);

/// The x range drawn.
pub const X_RANGE: (f32, f32) = (-4.0, 4.0);

/// The curves: `x` at `n` evenly spaced points of [`X_RANGE`], then ReLU(x)
/// and GELU(x) as [`ReLU`] and [`GELU`] (the exact, erf form) compute them.
pub fn activation_values(n: usize) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let n = n.max(2);
    let (lo, hi) = X_RANGE;
    let xs: Vec<f32> = (0..n)
        .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
        .collect();
    let x = Tensor::from_vec(&[n], xs.clone()).map_err(|e| AppError::Usage(e.to_string()))?;
    let relu = ReLU::new().infer(&x)?.into_vec();
    let gelu = GELU::new().infer(&x)?.into_vec();
    Ok((xs, relu, gelu))
}

/// Draws the ReLU and GELU curves on [`X_RANGE`] to the PNG `path`
/// ([`SIZE`] pixels), with axes, a grid, a legend, and GELU's minimum
/// marked (it is not monotonic, unlike ReLU).
pub fn activation_curves(path: &Path) -> Result<()> {
    convnet_train::fsutil::check_output(path, &[])?;
    let (xs, relu, gelu) = activation_values(401)?;
    let fail = |e: String| AppError::Image {
        path: path.to_path_buf(),
        msg: format!("drawing the curves: {e}"),
    };
    register_font();
    let (w, h) = SIZE;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let (x0, x1) = X_RANGE;
        let mut chart = ChartBuilder::on(&root)
            .caption("ReLU and GELU (Fonctions ReLU et GELU)", (FONT, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(52)
            .build_cartesian_2d(x0 as f64..x1 as f64, -1.0f64..4.2)
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("x")
            .y_desc("f(x)")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .light_line_style(WHITE)
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        // The axes through the origin.
        for line in [
            vec![(x0 as f64, 0.0), (x1 as f64, 0.0)],
            vec![(0.0, -1.0), (0.0, 4.2)],
        ] {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    line,
                    BLACK.stroke_width(1),
                )))
                .map_err(|e| fail(e.to_string()))?;
        }
        let series = [
            (&relu, BLUE, "ReLU(x) = max(0, x)"),
            (&gelu, RED, "GELU(x) = x \u{3a6}(x)"),
        ];
        for (ys, color, label) in series {
            let points: Vec<(f64, f64)> = xs
                .iter()
                .zip(ys.iter())
                .map(|(&x, &y)| (x as f64, y as f64))
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(3)))
                .map_err(|e| fail(e.to_string()))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                });
        }
        // GELU's minimum, where ReLU is flat at 0.
        let (i_min, y_min) =
            gelu.iter()
                .enumerate()
                .fold(
                    (0, f32::INFINITY),
                    |(bi, by), (i, &y)| {
                        if y < by {
                            (i, y)
                        } else {
                            (bi, by)
                        }
                    },
                );
        let at = (xs[i_min] as f64, y_min as f64);
        chart
            .draw_series(std::iter::once(Circle::new(at, 5, RED.filled())))
            .map_err(|e| fail(e.to_string()))?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("minimum {:.3} at x = {:.2}", y_min, xs[i_min]),
                (at.0 - 1.4, at.1 - 0.35),
                (FONT, 14).into_font(),
            )))
            .map_err(|e| fail(e.to_string()))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 16))
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    Ok(save_png(path, buf, w, h)?)
}
