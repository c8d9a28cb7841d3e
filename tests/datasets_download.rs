//! The real download code (`ensure_dataset`, as used by `cargo xtask
//! download` and `convnet train`) against HTTP servers started here on
//! 127.0.0.1, serving the real MNIST files (found as the binary finds them,
//! see [`convnet_tests::real_dataset`]): one
//! mirror serves one file corrupted, one truncated and the others good; a
//! second mirror serves them all good.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use convnet::datasets::{
    download::{ensure_dataset, DownloadOptions, FileAction, Progress},
    find_dataset, Dataset, DatasetKind, Split,
};
use convnet_tests::real_dataset;

/// A minimal HTTP/1.1 server: `GET /<name>` answers the bytes of `files[name]`
/// (404 otherwise), one request per connection, until dropped.
struct Server {
    base: String,
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = serve(stream, &files);
                }
            }
        });
        Server {
            base: format!("http://127.0.0.1:{port}/mnist/"),
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, files: &HashMap<String, Vec<u8>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let name = path.rsplit('/').next().unwrap_or("");
    match files.get(name) {
        Some(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
        None => write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?,
    }
    stream.flush()
}

/// The publisher's four `.gz` files, by name.
fn real_files() -> HashMap<String, Vec<u8>> {
    let dir = real_dataset(DatasetKind::Mnist);
    DatasetKind::Mnist
        .files()
        .iter()
        .map(|spec| {
            let name = spec.gz_name();
            let bytes = std::fs::read(dir.join(&name)).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (this test serves the publisher's gzip files: import them with \
                     `cargo xtask download mnist --from FOLDER` where FOLDER holds the .gz files)",
                    dir.join(&name).display()
                )
            });
            (name, bytes)
        })
        .collect()
}

fn options(mirrors: Vec<String>) -> DownloadOptions {
    DownloadOptions {
        mirrors: Some(mirrors),
        progress: Progress::Log,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        ..DownloadOptions::default()
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn corrupted_and_truncated_files_are_rejected_and_the_fallback_mirror_is_used() {
    let good = real_files();
    let mut flaky = good.clone();
    // Corrupted: one byte changed in the middle of the deflate data.
    let labels = flaky.get_mut("train-labels-idx1-ubyte.gz").unwrap();
    let mid = labels.len() / 2;
    labels[mid] ^= 0x20;
    // Truncated: the first half only (served with its honest length).
    let t10k = flaky.get_mut("t10k-labels-idx1-ubyte.gz").unwrap();
    t10k.truncate(t10k.len() / 2);
    let primary = Server::start(flaky);
    let fallback = Server::start(good);
    let data = tempfile::tempdir().unwrap();

    // The flaky mirror alone: the good first file is kept, the corrupted one
    // is rejected with its name and expected checksum, nothing half-written.
    let err = ensure_dataset(
        DatasetKind::Mnist,
        data.path(),
        &options(vec![primary.base.clone()]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("train-labels-idx1-ubyte"), "{err}");
    assert!(
        err.contains("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        "{err}"
    );
    assert!(err.contains("--from"), "{err}");
    let dir = data.path().join("mnist");
    assert_eq!(names_in(&dir), ["train-images-idx3-ubyte.gz"]);

    // With the fallback: everything arrives, each bad file from the fallback.
    let report = ensure_dataset(
        DatasetKind::Mnist,
        data.path(),
        &options(vec![primary.base.clone(), fallback.base.clone()]),
    )
    .unwrap();
    let sources: Vec<String> = report
        .files
        .iter()
        .map(|f| match &f.action {
            FileAction::AlreadyValid => "present".to_string(),
            FileAction::Downloaded { url } if url.starts_with(&primary.base) => "primary".into(),
            FileAction::Downloaded { url } if url.starts_with(&fallback.base) => "fallback".into(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(sources, ["present", "fallback", "primary", "fallback"]);
    assert_eq!(
        names_in(&dir),
        [
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz"
        ]
    );
    // The downloaded files are the publisher's, byte for byte, and load.
    for (name, bytes) in real_files() {
        assert_eq!(std::fs::read(dir.join(&name)).unwrap(), bytes, "{name}");
    }
    let test = Dataset::load(DatasetKind::Mnist, Split::Test, data.path()).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(
        find_dataset(DatasetKind::Mnist, Some(data.path())).unwrap(),
        dir
    );

    // A third run downloads nothing.
    let before = primary.requests.load(Ordering::SeqCst) + fallback.requests.load(Ordering::SeqCst);
    let again = ensure_dataset(
        DatasetKind::Mnist,
        data.path(),
        &options(vec![primary.base.clone(), fallback.base.clone()]),
    )
    .unwrap();
    assert!(again
        .files
        .iter()
        .all(|f| f.action == FileAction::AlreadyValid));
    let after = primary.requests.load(Ordering::SeqCst) + fallback.requests.load(Ordering::SeqCst);
    assert_eq!(before, after);
}

#[test]
fn without_network_the_error_explains_from() {
    // Nobody listens on this port: what a machine without internet sees.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let err = ensure_dataset(
        DatasetKind::FashionMnist,
        data.path(),
        &options(vec![format!("http://127.0.0.1:{port}/")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("cargo xtask download fashion-mnist --from FOLDER"),
        "{err}"
    );
    // Nothing left behind: not even the empty folder the download created.
    assert!(!data.path().join("fashion-mnist").exists());
    assert_eq!(names_in(data.path()), Vec::<String>::new());
}
