use super::*;
use crate::augment::shift_image;
use crate::kind::{DatasetKind, Split};

/// `n` images; image `i` has pixel `p` = ((i * 7 + p) % 256) / 255, label i % 10.
fn dataset(kind: DatasetKind, n: usize) -> Dataset {
    let pixels = (0..n * IMAGE_PIXELS)
        .map(|k| ((k / IMAGE_PIXELS * 7 + k % IMAGE_PIXELS) % 256) as f32 / 255.0)
        .collect();
    let images = Tensor::from_vec(&[n, 1, 28, 28], pixels).unwrap();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Dataset::from_parts(kind, Split::Train, images, labels).unwrap()
}

fn all_indices(loader: &DataLoader, epoch: usize) -> Vec<usize> {
    loader.epoch(epoch).flat_map(|b| b.indices).collect()
}

#[test]
fn batch_counts_with_and_without_drop_last() {
    let ds = Arc::new(dataset(DatasetKind::Mnist, 10));
    let keep = DataLoader::new(Arc::clone(&ds), LoaderConfig::eval(4)).unwrap();
    assert_eq!((keep.num_batches(), keep.len()), (3, 10));
    let sizes: Vec<usize> = keep.epoch(0).map(|b| b.len()).collect();
    assert_eq!(sizes, [4, 4, 2]);
    assert_eq!(keep.epoch(0).len(), 3);
    let drop = DataLoader::new(
        Arc::clone(&ds),
        LoaderConfig {
            drop_last: true,
            ..LoaderConfig::eval(4)
        },
    )
    .unwrap();
    assert_eq!((drop.num_batches(), drop.len()), (2, 8));
    assert_eq!(drop.epoch(0).map(|b| b.len()).collect::<Vec<_>>(), [4, 4]);
    let big = DataLoader::new(
        ds,
        LoaderConfig {
            drop_last: true,
            ..LoaderConfig::eval(11)
        },
    )
    .unwrap();
    assert_eq!(big.num_batches(), 0);
    assert_eq!(big.epoch(0).count(), 0);
}

#[test]
fn eval_order_is_the_file_order_and_labels_follow_indices() {
    let loader = DataLoader::new(dataset(DatasetKind::Mnist, 25), LoaderConfig::eval(8)).unwrap();
    assert_eq!(all_indices(&loader, 5), (0..25).collect::<Vec<_>>());
    for b in loader.epoch(0) {
        for (l, i) in b.labels.iter().zip(&b.indices) {
            assert_eq!(*l, i % 10);
        }
    }
}

#[test]
fn shuffling_is_a_seeded_permutation_per_epoch() {
    let ds = Arc::new(dataset(DatasetKind::Mnist, 100));
    let a = DataLoader::new(Arc::clone(&ds), LoaderConfig::train(16, 1)).unwrap();
    let b = DataLoader::new(Arc::clone(&ds), LoaderConfig::train(16, 1)).unwrap();
    let c = DataLoader::new(ds, LoaderConfig::train(16, 2)).unwrap();
    let e0 = all_indices(&a, 0);
    let mut sorted = e0.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_ne!(e0, (0..100).collect::<Vec<_>>());
    assert_ne!(e0, all_indices(&a, 1), "each epoch has its own order");
    assert_eq!(e0, all_indices(&b, 0), "same seed, same order");
    assert_ne!(e0, all_indices(&c, 0), "other seed, other order");
    assert_eq!(a.order(0), e0);
}

#[test]
fn an_epoch_is_a_pure_function_of_seed_and_epoch() {
    // A run resumed at epoch 3 sees exactly the batches of an uninterrupted one.
    let ds = Arc::new(dataset(DatasetKind::FashionMnist, 50));
    let config = LoaderConfig {
        augment: Augment {
            translate: 3,
            hflip: true,
        },
        ..LoaderConfig::train(8, 99)
    };
    let full = DataLoader::new(Arc::clone(&ds), config.clone()).unwrap();
    let mut uninterrupted = Vec::new();
    for e in 0..4 {
        uninterrupted.push(full.epoch(e).collect::<Vec<_>>());
    }
    let resumed = DataLoader::new(Arc::clone(&ds), config.clone()).unwrap();
    assert_eq!(resumed.epoch(3).collect::<Vec<_>>(), uninterrupted[3]);
    assert_ne!(uninterrupted[2], uninterrupted[3]);
    // Random access gives the same batch.
    assert_eq!(resumed.batch(3, 4).unwrap(), uninterrupted[3][4]);
    assert!(resumed.batch(3, 7).is_err());
    // Prefetching on a background thread changes nothing.
    let prefetching = DataLoader::new(
        ds,
        LoaderConfig {
            prefetch: 3,
            ..config
        },
    )
    .unwrap();
    assert_eq!(prefetching.epoch(3).collect::<Vec<_>>(), uninterrupted[3]);
    // Dropping a prefetching epoch half-way neither hangs nor leaks the thread.
    let mut epoch = prefetching.epoch(1);
    assert_eq!(epoch.next().unwrap(), uninterrupted[1][0]);
    drop(epoch);
}

#[test]
fn augmentation_is_the_documented_function_of_the_position() {
    let ds = dataset(DatasetKind::FashionMnist, 12);
    let seed = 5;
    let aug = Augment {
        translate: 2,
        hflip: true,
    };
    let loader = DataLoader::new(
        ds.clone(),
        LoaderConfig {
            augment: aug,
            normalize: Normalize::None,
            ..LoaderConfig::train(5, seed)
        },
    )
    .unwrap();
    let epoch = 2;
    let aug_rng = Rng::seed_from(seed).fork(epoch as u64).fork(1);
    let mut changed = 0;
    for (b, batch) in loader.epoch(epoch).enumerate() {
        for (j, &idx) in batch.indices.iter().enumerate() {
            let pos = b * 5 + j;
            let mut expect = vec![0.0; IMAGE_PIXELS];
            aug.apply(
                &mut expect,
                ds.image(idx).unwrap(),
                &mut aug_rng.fork(pos as u64),
            );
            let got = &batch.images.as_slice()[j * IMAGE_PIXELS..(j + 1) * IMAGE_PIXELS];
            assert_eq!(got, &expect[..]);
            changed += (got != ds.image(idx).unwrap()) as usize;
        }
    }
    assert!(
        changed >= 8,
        "most images are moved or flipped ({changed} of 12)"
    );
    // And the identity shift really is the identity.
    let mut same = vec![0.0; IMAGE_PIXELS];
    shift_image(&mut same, ds.image(3).unwrap(), 0, 0, false);
    assert_eq!(same, ds.image(3).unwrap());
}

#[test]
fn normalisation_modes() {
    let ds = Arc::new(dataset(DatasetKind::Mnist, 20));
    let raw = DataLoader::new(
        Arc::clone(&ds),
        LoaderConfig {
            normalize: Normalize::None,
            ..LoaderConfig::eval(20)
        },
    )
    .unwrap();
    let x = raw.epoch(0).next().unwrap().images;
    assert_eq!(x.as_slice(), ds.images().as_slice());
    assert_eq!(raw.normalization(), None);

    let usual = DataLoader::new(Arc::clone(&ds), LoaderConfig::eval(20)).unwrap();
    assert_eq!(usual.normalization(), Some((0.1307, 0.3081)));
    let y = usual.epoch(0).next().unwrap().images;
    assert_eq!(y.as_slice()[100], (x.as_slice()[100] - 0.1307) / 0.3081);

    let computed = DataLoader::new(
        Arc::clone(&ds),
        LoaderConfig {
            normalize: Normalize::Computed,
            ..LoaderConfig::eval(20)
        },
    )
    .unwrap();
    let z = computed.epoch(0).next().unwrap().images;
    let n = z.len() as f64;
    let mean = z.sum() / n;
    let var = z
        .as_slice()
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(
        mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
        "{mean} {var}"
    );

    for (mean, std) in [(0.0, 0.0), (0.0, -1.0), (f32::NAN, 1.0)] {
        let bad = LoaderConfig {
            normalize: Normalize::Custom { mean, std },
            ..LoaderConfig::eval(4)
        };
        assert!(DataLoader::new(Arc::clone(&ds), bad).is_err());
    }
}

#[test]
fn bad_configurations_are_errors() {
    let mnist = Arc::new(dataset(DatasetKind::Mnist, 4));
    let err = DataLoader::new(Arc::clone(&mnist), LoaderConfig::eval(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch size"), "{err}");
    let flip = LoaderConfig {
        augment: Augment {
            translate: 0,
            hflip: true,
        },
        ..LoaderConfig::train(2, 0)
    };
    let err = DataLoader::new(mnist, flip.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("horizontal flip"), "{err}");
    assert!(DataLoader::new(dataset(DatasetKind::FashionMnist, 4), flip).is_ok());
}
