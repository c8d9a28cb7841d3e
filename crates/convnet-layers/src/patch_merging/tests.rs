use super::*;
use crate::testing::{check_layer, random};

fn layer(dim: usize, seed: u64) -> PatchMerging {
    let mut rng = Rng::seed_from(seed);
    let mut m = PatchMerging::new(dim, &mut rng).unwrap();
    // A non-trivial LayerNorm affine, so that its gradients are tested.
    m.visit_params_mut("", &mut |name, p| {
        if name.starts_with("norm.") {
            p.value = Tensor::randn(p.shape(), 1.0, 0.3, &mut rng);
        }
    });
    m
}

/// The merged map written as torchvision slices it: `x[..., 0::2, 0::2, :]`,
/// `x[..., 1::2, 0::2, :]`, `x[..., 0::2, 1::2, :]`, `x[..., 1::2, 1::2, :]`
/// of the zero-padded map, concatenated on the channels.
fn reference_merge(x: &Tensor) -> Vec<f32> {
    let [n, h, w, c] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    let (ph, pw) = (h + h % 2, w + w % 2);
    let padded = |img: usize, y: usize, xx: usize, ch: usize| {
        if y < h && xx < w {
            x.at(&[img, y, xx, ch])
        } else {
            0.0
        }
    };
    let mut out = Vec::new();
    for img in 0..n {
        for i in 0..ph / 2 {
            for j in 0..pw / 2 {
                for (y0, x0) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    for ch in 0..c {
                        out.push(padded(img, 2 * i + y0, 2 * j + x0, ch));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn merges_as_torchvision_slices_then_norm_and_reduction() {
    for shape in [[1, 2, 2, 3], [2, 5, 4, 2], [1, 3, 7, 1], [1, 1, 1, 2]] {
        let m = layer(shape[3], 1);
        let x = random(&shape, 2);
        let merged = merge_2x2(x.as_slice(), shape);
        assert_eq!(
            merged.as_slice(),
            reference_merge(&x).as_slice(),
            "{shape:?}"
        );
        let want = m.reduction.infer(&m.norm.infer(&merged).unwrap()).unwrap();
        assert_eq!(m.infer(&x).unwrap(), want);
        assert_eq!(
            m.output_shape(&shape).unwrap(),
            [
                shape[0],
                shape[1].div_ceil(2),
                shape[2].div_ceil(2),
                2 * shape[3]
            ]
        );
    }
}

#[test]
fn gradients_of_input_and_every_parameter() {
    // Even sizes, odd sizes (padding) and a single pixel.
    check_layer(&mut layer(2, 3), &random(&[2, 4, 4, 2], 4));
    check_layer(&mut layer(3, 5), &random(&[1, 3, 5, 3], 6));
    check_layer(&mut layer(2, 7), &random(&[2, 1, 1, 2], 8));
}

#[test]
fn unmerge_is_the_adjoint_of_merge() {
    let shape = [2, 5, 3, 2];
    let x = random(&shape, 9);
    let merged = merge_2x2(x.as_slice(), shape);
    let g = random(merged.shape(), 10);
    let back = unmerge_2x2(g.as_slice(), shape);
    let lhs: f64 = merged
        .as_slice()
        .iter()
        .zip(g.as_slice())
        .map(|(a, b)| (a * b) as f64)
        .sum();
    let rhs: f64 = x
        .as_slice()
        .iter()
        .zip(back.as_slice())
        .map(|(a, b)| (a * b) as f64)
        .sum();
    assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
}

#[test]
fn config_shape_and_cache_errors() {
    let mut rng = Rng::seed_from(0);
    assert!(PatchMerging::new(0, &mut rng).is_err());
    let with_bias = Linear::new(LinearConfig::new(8, 4), &mut rng).unwrap();
    let e = PatchMerging::from_parts(with_bias, LayerNorm::new(8).unwrap()).unwrap_err();
    assert!(e.to_string().contains("without bias"), "{e}");
    let odd = Linear::new(LinearConfig::new(6, 3).bias(false), &mut rng).unwrap();
    assert!(PatchMerging::from_parts(odd, LayerNorm::new(6).unwrap()).is_err());
    let ok = Linear::new(LinearConfig::new(8, 4).bias(false), &mut rng).unwrap();
    assert!(PatchMerging::from_parts(ok, LayerNorm::new(4).unwrap()).is_err());
    let mut m = layer(2, 1);
    for bad in [&[2, 4, 4][..], &[1, 4, 4, 3], &[1, 0, 4, 2]] {
        assert!(m.infer(&Tensor::zeros(bad)).is_err(), "{bad:?}");
        assert!(m.output_shape(bad).is_err(), "{bad:?}");
    }
    assert!(matches!(
        m.backward(&Tensor::zeros(&[1, 2, 2, 4])),
        Err(LayerError::NoCache { .. })
    ));
    m.forward(&Tensor::zeros(&[1, 3, 3, 2])).unwrap();
    assert!(m.backward(&Tensor::zeros(&[1, 1, 2, 4])).is_err());
    assert!(m.backward(&Tensor::zeros(&[1, 2, 2, 4])).is_ok());
    // A copy has the same values and no cache.
    let copy = m.clone_boxed().unwrap();
    assert_eq!(copy.param_shapes(), m.param_shapes());
    let x = random(&[1, 3, 3, 2], 3);
    assert_eq!(copy.infer(&x).unwrap(), m.infer(&x).unwrap());
}
