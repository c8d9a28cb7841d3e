use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::export::export_folder;
use crate::folder::{ImageFolder, OnError};
use crate::kind::{DatasetKind, Split};
use crate::loader::{DataLoader, LoaderConfig};
use crate::transforms::Transform;
use crate::Dataset;

/// `n` MNIST-like images; pixel `p` of image `i` is `((i * 7 + p) % 256) / 255`.
fn dataset(n: usize) -> Dataset {
    let pixels = (0..n * 784)
        .map(|k| ((k / 784 * 7 + k % 784) % 256) as f32 / 255.0)
        .collect();
    let images = Tensor::from_vec(&[n, 1, 28, 28], pixels).unwrap();
    let labels = (0..n).map(|i| (i * 3 % 10) as u8).collect();
    Dataset::from_parts(DatasetKind::Mnist, Split::Train, images, labels).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.as_slice().iter().map(|v| v.to_bits()).collect()
}

/// Asserts that both loaders give bit-identical batches for `epochs`.
fn assert_same_batches(idx: &DataLoader, vision: &VisionLoader, epochs: usize) {
    for epoch in 0..epochs {
        let a: Vec<_> = idx.epoch(epoch).collect();
        let b: Vec<_> = vision.epoch(epoch).map(|b| b.unwrap()).collect();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.images.shape(), y.images.shape());
            assert_eq!(bits(&x.images), bits(&y.images), "epoch {epoch}");
            assert_eq!(x.labels, y.labels);
        }
    }
}

#[test]
fn mnist_through_the_vision_loader_matches_the_data_loader_bit_for_bit() {
    let ds = Arc::new(dataset(50));
    let (mean, std) = DatasetKind::Mnist.mean_std();
    let idx = DataLoader::new(Arc::clone(&ds), LoaderConfig::train(16, 5)).unwrap();
    let vision = VisionLoader::new(
        ds,
        Pipeline::normalize(vec![mean], vec![std]),
        VisionConfig::train(16, 5),
    )
    .unwrap();
    assert_eq!(vision.order(1), idx.order(1));
    assert_eq!(vision.num_batches(), 4);
    assert_same_batches(&idx, &vision, 2);
}

/// The data folder holding the real MNIST files, found as the binary finds
/// it (`$CONVNET_DATA`, `./data`, `/usr/share/datasets`) or in the
/// workspace's `data/`, else downloaded (verified) into the latter; a
/// failure naming every folder looked at and the way out otherwise.
fn real_mnist_data_dir() -> PathBuf {
    let workspace_data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let mut dirs = crate::locate::data_dir_candidates(None);
    dirs.push(workspace_data.clone());
    let to = crate::resolve_data_dir(None);
    let to = if to == Path::new(crate::locate::DEFAULT_DATA_DIR) {
        workspace_data
    } else {
        to
    };
    let opts = crate::download::DownloadOptions {
        progress: crate::download::Progress::Log,
        ..Default::default()
    };
    let dir = crate::download::find_or_download(DatasetKind::Mnist, &dirs, &to, &opts)
        .unwrap_or_else(|e| panic!("this test needs the real MNIST files: {e}"));
    dir.parent().expect("<data dir>/mnist").to_path_buf()
}

#[test]
fn real_mnist_exported_as_pngs_gives_the_idx_batches_bit_for_bit() {
    let test = Dataset::load(DatasetKind::Mnist, Split::Test, real_mnist_data_dir()).unwrap();
    let subset = test.subset(0..300).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnist");
    let report = export_folder(&[("test", &subset as &dyn ImageSource)], &dir, false).unwrap();
    assert_eq!(report.counts, [("test".to_string(), 300)]);
    let folder = ImageFolder::open(dir.join("test"), Default::default()).unwrap();
    assert_eq!(folder.class_names()[0], "0_0");
    assert_eq!(folder.class_names()[9], "9_9");
    assert_eq!((folder.len(), folder.channels()), (300, 1));
    // The folder is sorted by class then index: the IDX images in that order.
    let order: Vec<usize> = (0..folder.len())
        .map(|i| {
            let (path, label) = folder.sample(i).unwrap();
            let index: usize = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            assert_eq!(label, subset.labels[index] as usize, "{}", path.display());
            index
        })
        .collect();
    let in_folder_order = subset.select(&order).unwrap();
    let (mean, std) = DatasetKind::Mnist.mean_std();
    let idx = DataLoader::new(in_folder_order, LoaderConfig::train(32, 9)).unwrap();
    let vision = VisionLoader::new(
        Arc::new(folder),
        Pipeline::normalize(vec![mean], vec![std]),
        VisionConfig::train(32, 9),
    )
    .unwrap();
    assert_same_batches(&idx, &vision, 2);
}

/// A folder of `n` 6×5 grey images in two classes, written by the test.
fn small_folder(n: usize) -> (tempfile::TempDir, ImageFolder) {
    let root = tempfile::tempdir().unwrap();
    for i in 0..n {
        let class = if i % 3 == 0 { "a" } else { "b" };
        let path = root.path().join(class).join(format!("{i:03}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let pixels = (0..30).map(|p| (i * 11 + p * 5) as u8).collect();
        RawImage::new(6, 5, 1, pixels)
            .unwrap()
            .to_dynamic()
            .unwrap()
            .save(&path)
            .unwrap();
    }
    let folder = ImageFolder::open(root.path(), Default::default()).unwrap();
    (root, folder)
}

fn augmenting() -> Pipeline {
    Pipeline {
        transforms: vec![
            Transform::RandomCrop {
                height: 4,
                width: 4,
                padding: 1,
            },
            Transform::RandomHorizontalFlip { p: 0.5 },
            Transform::ColorJitter {
                brightness: 0.3,
                contrast: 0.3,
                saturation: 0.0,
                hue: 0.0,
            },
        ],
        ..Pipeline::normalize(vec![0.5], vec![0.25])
    }
}

#[test]
fn epochs_are_pure_functions_of_seed_and_epoch_whatever_the_prefetch() {
    let (_root, folder) = small_folder(11);
    let source: Arc<dyn ImageSource> = Arc::new(folder);
    let make = |prefetch| {
        let config = VisionConfig {
            prefetch,
            ..VisionConfig::train(4, 3)
        };
        VisionLoader::new(Arc::clone(&source), augmenting(), config).unwrap()
    };
    let (ahead, inline) = (make(2), make(0));
    let e3: Vec<Batch> = ahead.epoch(3).map(|b| b.unwrap()).collect();
    assert_eq!(e3.len(), 3);
    assert_eq!(e3[0].images.shape(), &[4, 1, 4, 4]);
    assert_eq!(e3[2].images.shape(), &[3, 1, 4, 4]);
    // A resumed run (a new loader, straight to epoch 3) sees the same batches.
    let resumed: Vec<Batch> = inline.epoch(3).map(|b| b.unwrap()).collect();
    assert_eq!(e3, resumed);
    assert_eq!(ahead.batch(3, 1).unwrap(), e3[1]);
    assert_ne!(ahead.epoch(4).next().unwrap().unwrap(), e3[0]);
    let mut seen: Vec<usize> = e3.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort();
    assert_eq!(seen, (0..11).collect::<Vec<_>>());
    for b in &e3 {
        for (l, &i) in b.labels.iter().zip(&b.indices) {
            // Class a holds 000, 003, 006 and 009: folder indices 0..4.
            assert_eq!(*l, usize::from(i >= 4));
        }
    }
    assert!(ahead.batch(3, 3).is_err());
}

#[test]
fn a_bad_file_met_during_an_epoch_ends_it_with_an_error_naming_the_file() {
    let (root, _) = small_folder(9);
    std::fs::write(root.path().join("b/004.png"), b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let folder = ImageFolder::open(root.path(), Default::default()).unwrap();
    let loader =
        VisionLoader::new(Arc::new(folder), Pipeline::default(), VisionConfig::eval(2)).unwrap();
    let results: Vec<_> = loader.epoch(0).collect();
    let err = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(err.to_string().contains("004.png"), "{err}");
    assert!(results.last().unwrap().is_err(), "nothing after the error");
    // Skip instead: 8 images, and the file reported.
    let options = crate::FolderOptions {
        on_error: OnError::Skip,
        ..Default::default()
    };
    let data = folder_loaders(
        root.path(),
        FolderSplit::None,
        options,
        Pipeline::default(),
        Pipeline::default(),
        2,
        0,
    )
    .unwrap();
    assert_eq!(data.train.len(), 8);
    assert_eq!(data.skipped.len(), 1);
    assert!(data.skipped[0].path.ends_with("b/004.png"));
    assert_eq!((data.channels, data.class_names.len()), (1, 2));
    assert!(data.val.is_none());
    assert_eq!(data.train.epoch(0).filter(|b| b.is_ok()).count(), 4);
}

#[test]
fn images_of_different_sizes_in_a_batch_are_an_error_naming_them() {
    let (root, _) = small_folder(3);
    RawImage::new(7, 7, 1, vec![0; 49])
        .unwrap()
        .to_dynamic()
        .unwrap()
        .save(root.path().join("b/001.png"))
        .unwrap();
    let folder = ImageFolder::open(root.path(), Default::default()).unwrap();
    let loader =
        VisionLoader::new(Arc::new(folder), Pipeline::default(), VisionConfig::eval(3)).unwrap();
    let e = loader.epoch(0).next().unwrap().unwrap_err().to_string();
    assert!(e.contains("001.png") && e.contains("one size"), "{e}");
}

/// A source that counts the images it decodes.
#[derive(Debug)]
struct Counting {
    inner: Dataset,
    decoded: AtomicUsize,
}

impl ImageSource for Counting {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn class_names(&self) -> &[String] {
        ImageSource::class_names(&self.inner)
    }
    fn label(&self, index: usize) -> usize {
        ImageSource::label(&self.inner, index)
    }
    fn channels(&self) -> usize {
        1
    }
    fn image(&self, index: usize) -> Result<RawImage> {
        self.decoded.fetch_add(1, Ordering::SeqCst);
        ImageSource::image(&self.inner, index)
    }
    fn describe(&self, index: usize) -> String {
        ImageSource::describe(&self.inner, index)
    }
}

#[test]
fn prefetching_runs_at_most_depth_batches_ahead() {
    let source = Arc::new(Counting {
        inner: dataset(100),
        decoded: AtomicUsize::new(0),
    });
    let config = VisionConfig {
        prefetch: 2,
        ..VisionConfig::train(5, 1)
    };
    let loader = VisionLoader::new(source.clone(), Pipeline::default(), config).unwrap();
    let mut epoch = loader.epoch(0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // 2 batches waiting in the channel + 1 made and blocked on sending.
    let ahead = source.decoded.load(Ordering::SeqCst);
    assert!(
        ahead <= 3 * 5,
        "{ahead} images decoded before any was asked for"
    );
    epoch.next().unwrap().unwrap();
    assert_eq!(epoch.count(), 19);
    assert_eq!(source.decoded.load(Ordering::SeqCst), 100);
}

#[test]
fn the_cache_never_holds_more_than_its_budget() {
    let cache = ImageCache::new(100);
    let img = |n: usize| Arc::new(RawImage::zeros(n, 1, 1));
    assert!(cache.insert(0, img(40)));
    assert!(cache.insert(1, img(40)));
    assert_eq!(cache.bytes(), 80);
    assert!(cache.insert(2, img(40)), "evicts the oldest to fit");
    assert_eq!((cache.bytes(), cache.len()), (80, 2));
    assert!(cache.get(0).is_none() && cache.get(1).is_some() && cache.get(2).is_some());
    assert!(
        !cache.insert(3, img(101)),
        "larger than the budget: not kept"
    );
    assert!(cache.insert(4, img(100)));
    assert_eq!((cache.bytes(), cache.len()), (100, 1));
    for i in 10..200 {
        cache.insert(i, img(1 + i % 37));
        assert!(cache.bytes() <= 100);
    }
}

#[test]
fn a_cache_that_fits_the_dataset_decodes_each_image_once() {
    let source = Arc::new(Counting {
        inner: dataset(30),
        decoded: AtomicUsize::new(0),
    });
    let loader = |cache_bytes| {
        let config = VisionConfig {
            cache_bytes,
            ..VisionConfig::train(8, 2)
        };
        VisionLoader::new(source.clone(), augmenting(), config).unwrap()
    };
    let cached = loader(30 * 784);
    let a: Vec<_> = cached.epoch(1).map(|b| b.unwrap()).collect();
    let b: Vec<_> = cached.epoch(1).map(|b| b.unwrap()).collect();
    assert_eq!(a, b, "the cache does not change the batches");
    assert_eq!(source.decoded.load(Ordering::SeqCst), 30);
    // A budget of 5 images: the cache stays within it.
    let small = loader(5 * 784);
    small.epoch(0).for_each(|b| drop(b.unwrap()));
    let cache = small.cache().unwrap();
    assert!(cache.bytes() <= 5 * 784 && cache.len() == 5);
    assert_eq!(small.epoch(1).map(|b| b.unwrap()).collect::<Vec<_>>(), a);
}
