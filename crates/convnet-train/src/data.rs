//! The datasets crate's [`DataLoader`] as a [`BatchSource`].

use convnet_datasets::DataLoader;

use crate::error::Result;
use crate::trainer::{Batch, BatchSource};

impl BatchSource for DataLoader {
    fn num_samples(&self) -> usize {
        self.len()
    }

    fn num_batches(&self) -> usize {
        DataLoader::num_batches(self)
    }

    fn batches(&self, epoch: usize) -> Box<dyn Iterator<Item = Result<Batch>> + '_> {
        Box::new(self.epoch(epoch).map(|b| {
            Ok(Batch {
                labels: b.labels.iter().map(|&l| usize::from(l)).collect(),
                images: b.images,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convnet_datasets::{Dataset, DatasetKind, LoaderConfig, Split};
    use convnet_tensor::Tensor;

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
