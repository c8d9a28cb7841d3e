use super::*;

/// A `w`×`h` greyscale image whose pixel `(x, y)` is `f(x, y)`.
fn grey(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> RawImage {
    let pixels = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| f(x, y));
    RawImage::new(w, h, 1, pixels.collect()).unwrap()
}

fn rng() -> Rng {
    Rng::seed_from(7)
}

#[test]
fn center_crop_offsets_round_half_to_even_as_torchvision() {
    // Pixel value = 10 * y + x.
    let img = grey(7, 5, |x, y| (10 * y + x) as u8);
    // (5 - 2) / 2 = 1.5 -> 2 (top); (7 - 2) / 2 = 2.5 -> 2 (left).
    let c = center_crop(&img, 2, 2);
    assert_eq!(c.pixels, [22, 23, 32, 33]);
    // (5 - 4) / 2 = 0.5 -> 0; (7 - 4) / 2 = 1.5 -> 2.
    let c = center_crop(&img, 4, 4);
    assert_eq!(&c.pixels[..4], [2, 3, 4, 5]);
    // Larger than the image: zero padding, (1, 1) left/top and (1, 2) right/bottom.
    let small = grey(2, 2, |x, y| 1 + (2 * y + x) as u8);
    let c = center_crop(&small, 5, 4);
    assert_eq!(
        c.pixels,
        [0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn horizontal_flip_mirrors_pixels_not_channels() {
    let img = RawImage::new(3, 1, 3, vec![1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    assert_eq!(hflip(&img).pixels, [7, 8, 9, 4, 5, 6, 1, 2, 3]);
    let always = Transform::RandomHorizontalFlip { p: 1.0 };
    let never = Transform::RandomHorizontalFlip { p: 0.0 };
    assert_eq!(always.apply(&img, &mut rng()).unwrap(), hflip(&img));
    assert_eq!(never.apply(&img, &mut rng()).unwrap(), img);
}

#[test]
fn to_tensor_and_normalize_per_channel_in_chw_order() {
    // Two RGB pixels: (255, 0, 51) and (0, 255, 102).
    let img = RawImage::new(2, 1, 3, vec![255, 0, 51, 0, 255, 102]).unwrap();
    let p = Pipeline::normalize(vec![0.5, 0.0, 0.1], vec![0.5, 2.0, 0.1]);
    p.validate(3).unwrap();
    let (v, shape) = p.apply(&img, &mut rng()).unwrap();
    assert_eq!(shape, [3, 1, 2]);
    let expect = [
        (1.0 - 0.5) / 0.5,
        (0.0 - 0.5) / 0.5,
        0.0 / 2.0,
        1.0 / 2.0,
        (51.0 / 255.0 - 0.1) / 0.1,
        (102.0 / 255.0 - 0.1) / 0.1,
    ];
    for (a, b) in v.iter().zip(expect) {
        assert!((a - b).abs() < 1e-6, "{v:?}");
    }
    // One mean and std for every channel; none at all gives byte / 255.
    let (v, _) = Pipeline::normalize(vec![0.0], vec![0.5])
        .apply(&img, &mut rng())
        .unwrap();
    assert_eq!(v[0], 2.0);
    let (v, _) = Pipeline::default().apply(&img, &mut rng()).unwrap();
    assert_eq!(v[4], 51.0 / 255.0);
}

#[test]
fn resize_keeps_a_constant_image_constant() {
    for channels in [1, 3] {
        let img = RawImage::new(13, 9, channels, vec![173; 13 * 9 * channels]).unwrap();
        for (h, w) in [(4, 5), (20, 31), (9, 3), (1, 1)] {
            let r = resize(&img, h, w);
            assert_eq!((r.height, r.width, r.channels), (h, w, channels));
            assert!(r.pixels.iter().all(|&v| v == 173), "{h}x{w}");
        }
    }
}

#[test]
fn resize_by_hand_downscale_2x_and_upscale_2x() {
    // Downscale 8 -> 4: the triangle filter widened to a support of 2
    // weighs columns 2i-1..=2i+2 by 1, 3, 3, 1 (/8), cut at the borders
    // (3, 3, 1 /7): [0, 70/8, 490/8, 70] rounded.
    let row = [0u8, 0, 0, 0, 70, 70, 70, 70];
    let img = grey(8, 1, |x, _| row[x]);
    assert_eq!(resize(&img, 1, 4).pixels, [0, 9, 61, 70]);
    // The same along the other axis.
    let col = grey(1, 8, |_, y| row[y]);
    assert_eq!(resize(&col, 4, 1).pixels, [0, 9, 61, 70]);
    // Upscale 2 -> 4: sample centres 0.25, 0.75, 1.25, 1.75 -> 0, 25, 75, 100.
    let img = grey(2, 1, |x, _| [0, 100][x]);
    assert_eq!(resize(&img, 1, 4).pixels, [0, 25, 75, 100]);
}

#[test]
fn resize_sizes_follow_torchvision() {
    assert_eq!(resized_size(30, 40, ResizeTo::Shorter(15)), (15, 20));
    assert_eq!(resized_size(40, 30, ResizeTo::Shorter(15)), (20, 15));
    // int(2 * 7 / 3) = 4, truncated.
    assert_eq!(resized_size(3, 7, ResizeTo::Shorter(2)), (2, 4));
    let exact = ResizeTo::Exact {
        height: 5,
        width: 6,
    };
    assert_eq!(resized_size(3, 7, exact), (5, 6));
}

#[test]
fn random_crop_is_a_window_of_the_padded_image_and_seeded() {
    let img = grey(4, 4, |x, y| 1 + (4 * y + x) as u8);
    let t = Transform::RandomCrop {
        height: 4,
        width: 4,
        padding: 1,
    };
    let padded = pad(&img, 1, 1, 1, 1);
    let mut seen = std::collections::HashSet::new();
    for seed in 0..60 {
        let out = t.apply(&img, &mut Rng::seed_from(seed)).unwrap();
        let offset = (0..3)
            .flat_map(|top| (0..3).map(move |left| (top, left)))
            .find(|&(top, left)| crop(&padded, top, left, 4, 4) == out)
            .expect("a window of the padded image");
        seen.insert(offset);
        assert_eq!(out, t.apply(&img, &mut Rng::seed_from(seed)).unwrap());
    }
    assert_eq!(seen.len(), 9, "every offset is drawn: {seen:?}");
    let too_big = Transform::RandomCrop {
        height: 7,
        width: 4,
        padding: 1,
    };
    let e = too_big.apply(&img, &mut rng()).unwrap_err().to_string();
    assert!(e.contains("too small"), "{e}");
}

#[test]
fn random_resized_crop_samples_inside_and_falls_back_to_the_centre() {
    let t = Transform::random_resized_crop(6, 5);
    let img = grey(20, 16, |x, y| (x * 7 + y * 3) as u8);
    for seed in 0..20 {
        let mut r = Rng::seed_from(seed);
        let (top, left, h, w) = resized_crop_region(&img, (0.08, 1.0), (0.75, 4.0 / 3.0), &mut r);
        assert!(top + h <= 16 && left + w <= 20 && h > 0 && w > 0);
        let area = (h * w) as f64 / 320.0;
        assert!((0.05..=1.0).contains(&area), "{area}");
        let out = t.apply(&img, &mut Rng::seed_from(seed)).unwrap();
        assert_eq!((out.height, out.width), (6, 5));
    }
    // A 100x1 strip: no region of ratio <= 4/3 and area >= 8 fits in 10
    // attempts, so the centre 1x1 region (round(1 * 4/3) = 1 wide, at
    // column (100 - 1) / 2 = 49) is taken, resized to 3x2.
    let strip = grey(100, 1, |x, _| x as u8);
    let out = t
        .apply(&strip, &mut rng())
        .map(|o| resize(&o, 3, 2))
        .unwrap();
    assert!(out.pixels.iter().all(|&v| v == 49), "{:?}", out.pixels);
}

#[test]
fn pipelines_validate_sizes_stds_and_channel_counts() {
    let ok = Pipeline {
        transforms: vec![
            Transform::Resize(ResizeTo::Shorter(8)),
            Transform::CenterCrop {
                height: 8,
                width: 8,
            },
            Transform::RandomHorizontalFlip { p: 0.5 },
        ],
        mean: vec![0.5; 3],
        std: vec![0.25; 3],
    };
    ok.validate(3).unwrap();
    assert_eq!(ok.output_size(), Some((8, 8)));
    assert!(ok.is_random());
    let e = ok.validate(1).unwrap_err().to_string();
    assert!(e.contains("1-channel") && e.contains("3 means"), "{e}");
    let bad_std = Pipeline::normalize(vec![0.5], vec![0.0]);
    assert!(bad_std.validate(1).unwrap_err().to_string().contains("> 0"));
    let uneven = Pipeline::normalize(vec![0.5, 0.5, 0.5], vec![0.5]);
    assert!(uneven.validate(3).is_err());
    for t in [
        Transform::Resize(ResizeTo::Shorter(0)),
        Transform::CenterCrop {
            height: 0,
            width: 3,
        },
        Transform::RandomHorizontalFlip { p: 1.5 },
        Transform::RandomResizedCrop {
            height: 3,
            width: 3,
            scale: (0.5, 0.2),
            ratio: (0.75, 1.33),
        },
        Transform::ColorJitter {
            brightness: 0.1,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.7,
        },
    ] {
        let p = Pipeline {
            transforms: vec![t.clone()],
            ..Pipeline::default()
        };
        assert!(p.validate(1).is_err(), "{t:?}");
    }
    let only_shorter = Pipeline {
        transforms: vec![Transform::Resize(ResizeTo::Shorter(8))],
        ..Pipeline::default()
    };
    assert_eq!(only_shorter.output_size(), None);
}

#[test]
fn a_pipeline_survives_serialisation() {
    let p = Pipeline {
        transforms: vec![
            Transform::random_resized_crop(32, 32),
            Transform::ColorJitter {
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.4,
                hue: 0.1,
            },
            Transform::RandomCrop {
                height: 32,
                width: 32,
                padding: 4,
            },
        ],
        mean: vec![0.4914, 0.4822, 0.4465],
        std: vec![0.247, 0.243, 0.261],
    };
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Pipeline>(&json).unwrap(), p);
}
