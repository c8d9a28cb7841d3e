//! The datasets crate's loaders as [`BatchSource`]s: [`DataLoader`] (MNIST
//! and Fashion-MNIST in memory) and [`VisionLoader`] (any image source
//! through a transform pipeline; an image that cannot be decoded ends the
//! epoch with a [`TrainError::Data`] naming it).

use convnet_datasets::{DataLoader, VisionLoader};

use crate::error::{Result, TrainError};
use crate::trainer::{Batch, BatchSource};

impl BatchSource for DataLoader {
    fn num_samples(&self) -> usize {
        self.len()
    }

    fn num_batches(&self) -> usize {
        DataLoader::num_batches(self)
    }

    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(self.epoch(epoch).map(Ok))
    }
}

impl BatchSource for VisionLoader {
    fn num_samples(&self) -> usize {
        self.len()
    }

    fn num_batches(&self) -> usize {
        VisionLoader::num_batches(self)
    }

    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(
            self.epoch(epoch)
                .map(|b| b.map_err(|e| TrainError::Data(e.to_string()))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_datasets::{
        Dataset, DatasetKind, ImageFolder, ImageSource, LoaderConfig, Pipeline, RawImage, Split,
        VisionConfig,
    };
    use convnet_tensor::Tensor;
    use std::sync::Arc;

    #[test]
    fn vision_loader_batches_match_the_data_loader_and_report_bad_files() {
        let images = Tensor::from_vec(
            &[10, 1, 28, 28],
            (0..7840).map(|k| (k % 256) as f32 / 255.0).collect(),
        )
        .unwrap();
        let labels: Vec<u8> = (0..10).rev().collect();
        let ds = Arc::new(
            Dataset::from_parts(DatasetKind::Mnist, Split::Train, images, labels).unwrap(),
        );
        let (mean, std) = DatasetKind::Mnist.mean_std();
        let idx = DataLoader::new(Arc::clone(&ds), LoaderConfig::train(4, 5)).unwrap();
        let vision = VisionLoader::new(
            ds,
            Pipeline::normalize(vec![mean], vec![std]),
            VisionConfig::train(4, 5),
        )
        .unwrap();
        let (a, b): (&dyn BatchSource, &dyn BatchSource) = (&idx, &vision);
        assert_eq!((b.num_samples(), b.num_batches()), (10, 3));
        let a: Vec<Batch> = a.batches(2).map(|b| b.unwrap()).collect();
        let b: Vec<Batch> = b.batches(2).map(|b| b.unwrap()).collect();
        assert_eq!(a, b);

        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("cat")).unwrap();
        RawImage::new(2, 2, 1, vec![9; 4])
            .unwrap()
            .to_dynamic()
            .unwrap()
            .save(root.path().join("cat/a.png"))
            .unwrap();
        std::fs::write(root.path().join("cat/b.png"), b"").unwrap();
        let folder = ImageFolder::open(root.path(), Default::default()).unwrap();
        assert_eq!(folder.len(), 2);
        let loader =
            VisionLoader::new(Arc::new(folder), Pipeline::default(), VisionConfig::eval(1))
                .unwrap();
        let src: &dyn BatchSource = &loader;
        let results: Vec<_> = src.batches(0).collect();
        assert!(results[0].is_ok());
        let e = results[1].as_ref().unwrap_err().to_string();
        assert!(e.contains("b.png") && e.contains("empty"), "{e}");
    }

    #[test]
    fn loader_batches_carry_labels_and_are_reproducible() {
        let images = Tensor::arange(&[10, 1, 28, 28]);
        let labels: Vec<u8> = (0..10).collect();
        let ds = Dataset::from_parts(DatasetKind::Mnist, Split::Train, images, labels).unwrap();
        let loader = DataLoader::new(
            ds,
            LoaderConfig {
                drop_last: true,
                ..LoaderConfig::train(4, 5)
            },
        )
        .unwrap();
        let src: &dyn BatchSource = &loader;
        assert_eq!(src.num_batches(), 2);
        assert_eq!(src.num_samples(), 8);
        let a: Vec<Batch> = src.batches(1).map(|b| b.unwrap()).collect();
        let b: Vec<Batch> = src.batches(1).map(|b| b.unwrap()).collect();
        assert_eq!(a, b);
        let first: Vec<usize> = a[0].labels.clone();
        assert_eq!(first.len(), 4);
        assert!(first.iter().all(|&l| l < 10));
        let other: Vec<Batch> = src.batches(2).map(|b| b.unwrap()).collect();
        assert_ne!(a, other, "another epoch, another order");
    }
}
