//! The inference rows: `infer()` of a zoo model at its default input size on
//! a batch of random images. The median time is the latency of one batch;
//! images/s is the batch over that time.

use anyhow::Context;
use convnet::tensor::{Rng, Tensor};

use super::child::measure_fallible;
use super::train::{build_default, forward_flops, input_desc, model_row};
use super::{Kind, Reps, Row};

/// Times `model.infer` on one batch of `batch` random images.
pub fn infer(row_name: &str, model: &str, batch: usize, reps: Reps) -> anyhow::Result<Row> {
    let (net, config) = build_default(model)?;
    let shape = config.input_shape(batch);
    let images = Tensor::randn(&shape, 0.0, 1.0, &mut Rng::seed_from(7));
    let t = measure_fallible(reps, || {
        let logits = net.infer(&images)?;
        debug_assert_eq!(logits.shape(), [batch, config.num_classes]);
        Ok(())
    })
    .with_context(|| format!("{row_name}: inference"))?;
    let flops = forward_flops(&*net, model, &shape);
    Ok(model_row(
        row_name,
        Kind::Infer,
        batch,
        input_desc(&config),
        t,
        flops,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inference_row_counts_images_and_flops() {
        let reps = Reps {
            warmup: 0,
            min: 3,
            max: 3,
            budget_s: 0.0,
        };
        let row = infer("infer.lenet5.b8", "lenet5", 8, reps).unwrap();
        assert_eq!((row.kind, row.batch, row.reps), (Kind::Infer, 8, 3));
        assert!(row.min_s <= row.median_s && row.median_s <= row.max_s);
        assert_eq!(row.flops, 2.0 * 416_520.0 * 8.0);
        assert!(infer("infer.lenet6.b1", "lenet6", 1, reps).is_err());
    }
}
