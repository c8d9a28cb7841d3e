//! Shared helpers of the end-to-end tests in this folder.

use std::path::PathBuf;

use convnet::datasets::DatasetKind;

/// The real files of `kind` in the project's shared folder beside the
/// repository (`../shared/datasets/<name>`); a clear failure when absent.
pub fn shared_dataset(kind: DatasetKind) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/datasets")
        .join(kind.name());
    assert!(
        dir.is_dir(),
        "the real {} files are missing: expected them in {} (the project's shared folder \
         beside the repository)",
        kind.title(),
        dir.display()
    );
    dir
}
