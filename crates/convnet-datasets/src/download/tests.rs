use super::*;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::idx::{write_idx_to, IdxArray};

/// What the test server answers for a path.
#[derive(Clone)]
pub(crate) enum Reply {
    /// 200 with this body.
    Ok(Vec<u8>),
    /// 200 announcing the full length, but the connection closes after this
    /// many bytes.
    BrokenOff(Vec<u8>, usize),
    /// This status, empty body.
    Status(u16),
}

/// A tiny HTTP/1.1 server on 127.0.0.1, one request per connection, for as
/// long as it lives; counts the requests it served.
pub(crate) struct Server {
    pub(crate) base: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    port: u16,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (r, s) = (Arc::clone(&requests), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = answer(stream, &routes);
                }
            }
        });
        Server {
            base: format!("http://127.0.0.1:{port}/data/"),
            requests,
            stop,
            port,
            handle: Some(handle),
        }
    }

    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wakes up accept()
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn answer(mut stream: TcpStream, routes: &HashMap<String, Reply>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    match routes.get(&path).cloned().unwrap_or(Reply::Status(404)) {
        Reply::Ok(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        Reply::BrokenOff(body, sent) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body[..sent])?;
        }
        Reply::Status(code) => {
            write!(
                stream,
                "HTTP/1.1 {code} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
    }
    stream.flush()
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A small IDX file, its gzip and a spec with its real checksum.
fn sample(name: &'static str, seed: u8) -> (Vec<u8>, Vec<u8>, FileSpec) {
    let values: Vec<u8> = (0..3000u32)
        .map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 3) as u8)
        .collect();
    let plain = write_idx_to(
        Vec::new(),
        &IdxArray::from_vec(&[3000], values).unwrap(),
        name,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x");
    std::fs::write(&p, &plain).unwrap();
    let digest = digest_file(&p).unwrap();
    let spec = FileSpec {
        dataset: "mnist",
        name,
        len: digest.len,
        sha256: Box::leak(digest.sha256.into_boxed_str()),
    };
    let gz = gzip(&plain);
    (plain, gz, spec)
}

pub(crate) fn quiet() -> DownloadOptions {
    DownloadOptions {
        progress: Progress::Quiet,
        connect_timeout: std::time::Duration::from_secs(5),
        read_timeout: std::time::Duration::from_secs(5),
        ..DownloadOptions::default()
    }
}

pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn digest_is_of_the_decompressed_content() {
    let (plain, gz, spec) = sample("a-idx1-ubyte", 3);
    let dir = tempfile::tempdir().unwrap();
    let (p, g, r) = (
        dir.path().join("p"),
        dir.path().join("g"),
        dir.path().join("r"),
    );
    std::fs::write(&p, &plain).unwrap();
    std::fs::write(&g, &gz).unwrap();
    // The same content recompressed differently (as Debian does) also passes.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&plain).unwrap();
    let other = enc.finish().unwrap();
    assert_ne!(other, gz);
    std::fs::write(&r, &other).unwrap();
    for f in [&p, &g, &r] {
        verify_file(f, &spec).unwrap();
    }
    assert!(digest_file(&g).unwrap().gzip);
    assert!(!digest_file(&p).unwrap().gzip);
}

#[test]
fn a_good_mirror_is_downloaded_once_then_skipped() {
    let (_, gz, spec) = sample("train-labels-idx1-ubyte", 5);
    let server = Server::start(HashMap::from([(
        "/data/train-labels-idx1-ubyte.gz".to_string(),
        Reply::Ok(gz.clone()),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let mirrors = vec![server.base.clone()];
    let report = download_file(&spec, &mirrors, dir.path(), &quiet()).unwrap();
    assert_eq!(
        report.action,
        FileAction::Downloaded {
            url: format!("{}train-labels-idx1-ubyte.gz", server.base)
        }
    );
    assert_eq!(std::fs::read(&report.path).unwrap(), gz);
    assert_eq!(names_in(dir.path()), ["train-labels-idx1-ubyte.gz"]);
    let again = download_file(&spec, &mirrors, dir.path(), &quiet()).unwrap();
    assert_eq!(again.action, FileAction::AlreadyValid);
    assert_eq!(server.requests(), 1, "a valid file is not downloaded again");
}

#[test]
fn a_corrupt_file_falls_back_to_the_next_mirror() {
    let (_, gz, spec) = sample("t10k-labels-idx1-ubyte", 7);
    let mut corrupt = gz.clone();
    let n = corrupt.len();
    corrupt[n / 2] ^= 0x55;
    let bad = Server::start(HashMap::from([(
        "/data/t10k-labels-idx1-ubyte.gz".to_string(),
        Reply::Ok(corrupt),
    )]));
    let good = Server::start(HashMap::from([(
        "/data/t10k-labels-idx1-ubyte.gz".to_string(),
        Reply::Ok(gz.clone()),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let report = download_file(
        &spec,
        &[bad.base.clone(), good.base.clone()],
        dir.path(),
        &quiet(),
    )
    .unwrap();
    assert!(
        matches!(&report.action, FileAction::Downloaded { url } if url.starts_with(&good.base))
    );
    assert_eq!(names_in(dir.path()), ["t10k-labels-idx1-ubyte.gz"]);
    assert_eq!((bad.requests(), good.requests()), (1, 1));
}

#[test]
fn when_every_mirror_fails_the_error_lists_them_and_nothing_is_left() {
    let (plain, gz, spec) = sample("t10k-images-idx3-ubyte", 9);
    let path = "/data/t10k-images-idx3-ubyte.gz".to_string();
    // Same content, one label changed: decompresses fine, wrong checksum.
    let mut other = plain.clone();
    other[100] ^= 1;
    let servers: Vec<Server> = [
        Reply::Ok(gzip(&other)),
        Reply::Ok(gz[..gz.len() / 2].to_vec()),
        Reply::BrokenOff(gz.clone(), gz.len() / 3),
        Reply::Status(404),
    ]
    .into_iter()
    .map(|reply| Server::start(HashMap::from([(path.clone(), reply)])))
    .collect();
    let mirrors: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let err = download_file(&spec, &mirrors, dir.path(), &quiet())
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    for m in &mirrors {
        assert!(err.contains(m.as_str()), "names every mirror: {err}");
    }
    assert!(err.contains(spec.sha256), "says what was expected: {err}");
    assert!(err.contains("mnist/t10k-images-idx3-ubyte"), "{err}");
    assert!(
        err.contains("cannot be decompressed"),
        "the truncated one: {err}"
    );
    assert!(err.contains("404"), "{err}");
    assert!(err.contains("--from"), "explains the offline way: {err}");
    assert_eq!(
        names_in(dir.path()),
        Vec::<String>::new(),
        "no partial file"
    );
}

#[test]
fn offline_and_unreachable_errors_explain_from() {
    let (_, _, spec) = sample("train-images-idx3-ubyte", 11);
    let dir = tempfile::tempdir().unwrap();
    let offline = DownloadOptions {
        offline: true,
        ..quiet()
    };
    let err = download_file(&spec, &["http://127.0.0.1:9/".into()], dir.path(), &offline)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Offline") && err.contains("--from"), "{err}");
    // A port nobody listens on: connection refused.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = download_file(
        &spec,
        &[format!("http://127.0.0.1:{port}/")],
        dir.path(),
        &quiet(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cargo xtask download mnist --from"), "{err}");
    assert_eq!(names_in(dir.path()), Vec::<String>::new());
}

#[test]
fn an_invalid_present_file_is_replaced() {
    let (plain, gz, spec) = sample("train-labels-idx1-ubyte", 13);
    let dir = tempfile::tempdir().unwrap();
    // A stale plain copy with the wrong content.
    let mut wrong = plain.clone();
    wrong[50] ^= 4;
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), &wrong).unwrap();
    let server = Server::start(HashMap::from([(
        "/data/train-labels-idx1-ubyte.gz".to_string(),
        Reply::Ok(gz),
    )]));
    let report = download_file(
        &spec,
        std::slice::from_ref(&server.base),
        dir.path(),
        &quiet(),
    )
    .unwrap();
    assert!(matches!(report.action, FileAction::Downloaded { .. }));
    assert_eq!(names_in(dir.path()), ["train-labels-idx1-ubyte.gz"]);
}

#[test]
fn import_copies_plain_or_gz_and_rejects_bad_copies_without_writing() {
    let (plain, gz, spec) = sample("train-labels-idx1-ubyte", 17);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    // Missing: an error naming what was looked for.
    let err = import_file(&spec, src.path(), dst.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("train-labels-idx1-ubyte.gz"), "{err}");
    // A bad copy: rejected, named, nothing written.
    let mut bad = plain.clone();
    bad[20] ^= 1;
    std::fs::write(src.path().join("train-labels-idx1-ubyte"), &bad).unwrap();
    let err = import_file(&spec, src.path(), dst.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            &src.path()
                .join("train-labels-idx1-ubyte")
                .display()
                .to_string()
        ),
        "{err}"
    );
    assert!(err.contains(spec.sha256), "{err}");
    assert_eq!(names_in(dst.path()), Vec::<String>::new());
    // A good plain copy is imported as is.
    std::fs::write(src.path().join("train-labels-idx1-ubyte"), &plain).unwrap();
    let r = import_file(&spec, src.path(), dst.path()).unwrap();
    assert_eq!(r.path, dst.path().join("train-labels-idx1-ubyte"));
    assert_eq!(std::fs::read(&r.path).unwrap(), plain);
    // The .gz is preferred when both exist; the valid plain one is kept.
    std::fs::write(src.path().join("train-labels-idx1-ubyte.gz"), &gz).unwrap();
    let r = import_file(&spec, src.path(), dst.path()).unwrap();
    assert_eq!(r.action, FileAction::AlreadyValid);
}

#[test]
fn import_from_a_folder_without_the_files_says_what_it_needs() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let err = import_from(DatasetKind::FashionMnist, src.path(), dst.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fashion-mnist/train-images-idx3-ubyte"),
        "{err}"
    );
    let err = import_from(
        DatasetKind::Mnist,
        &src.path().join("does-not-exist"),
        dst.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("does-not-exist"), "{err}");
}

#[test]
fn the_publishers_mirrors_are_used_unless_overridden() {
    let opts = DownloadOptions::default();
    assert_eq!(
        opts.mirrors_for(DatasetKind::Mnist),
        [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/"
        ]
    );
    assert_eq!(opts.mirrors_for(DatasetKind::FashionMnist).len(), 2);
    let local = DownloadOptions {
        mirrors: Some(vec!["http://127.0.0.1:1/".into()]),
        ..opts
    };
    assert_eq!(
        local.mirrors_for(DatasetKind::FashionMnist),
        ["http://127.0.0.1:1/"]
    );
    assert_eq!(join_url("http://h/x", "f.gz"), "http://h/x/f.gz");
    assert_eq!(http::human_bytes(9_912_422), "9.5 MiB");
}

#[test]
fn import_rejects_a_huge_sparse_source_without_copying_it() {
    let (plain, _gz, spec) = sample("train-images-idx3-ubyte", 5);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    // The real content followed by 3 GB of holes.
    let source = src.path().join("train-images-idx3-ubyte");
    std::fs::write(&source, &plain).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&source)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let start = std::time::Instant::now();
    let err = import_file(&spec, src.path(), dst.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&source.display().to_string()), "{err}");
    assert!(err.contains(&format!("{} bytes", 3u64 << 30)), "{err}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}: the source was read",
        start.elapsed()
    );
    assert_eq!(names_in(dst.path()), Vec::<String>::new());
}

#[cfg(unix)]
#[test]
fn imported_and_downloaded_files_get_the_usual_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (plain, gz, spec) = sample("t10k-labels-idx1-ubyte", 3);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    // What an ordinary new file gets under this process's umask.
    let usual_path = src.path().join("usual");
    std::fs::write(&usual_path, b"x").unwrap();
    let usual = mode(&usual_path);
    std::fs::write(src.path().join("t10k-labels-idx1-ubyte"), &plain).unwrap();
    let r = import_file(&spec, src.path(), dst.path()).unwrap();
    assert_eq!(mode(&r.path), usual, "imported");
    let path = "/data/t10k-labels-idx1-ubyte.gz".to_string();
    let server = Server::start(HashMap::from([(path, Reply::Ok(gz))]));
    let dl = tempfile::tempdir().unwrap();
    let r = download_file(
        &spec,
        std::slice::from_ref(&server.base),
        dl.path(),
        &quiet(),
    )
    .unwrap();
    assert_eq!(mode(&r.path), usual, "downloaded");
}

#[test]
fn a_failed_first_download_leaves_no_empty_folder() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let opts = DownloadOptions {
        offline: true,
        ..quiet()
    };
    assert!(ensure_dataset(DatasetKind::Mnist, &data, &opts).is_err());
    assert!(
        !data.exists(),
        "data/ created by the failed download is gone"
    );
    // A folder that existed before stays.
    std::fs::create_dir(&data).unwrap();
    assert!(ensure_dataset(DatasetKind::Mnist, &data, &opts).is_err());
    assert!(data.is_dir() && !data.join("mnist").exists());
}

#[test]
fn leftover_part_files_are_removed_when_the_folder_is_used() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("mnist");
    std::fs::create_dir(&dir).unwrap();
    let part = dir.join(".mnist-train-images-idx3-ubyte.gz.Ab12Cd.part");
    std::fs::write(&part, b"half a download").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&part)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(600))
        .unwrap();
    let opts = DownloadOptions {
        offline: true,
        ..quiet()
    };
    assert!(ensure_dataset(DatasetKind::Mnist, root.path(), &opts).is_err());
    assert!(!part.exists(), "the killed download's part file is removed");
    assert!(dir.is_dir(), "a folder that existed is kept");
}

#[test]
fn find_or_download_takes_the_first_folder_holding_the_dataset() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let kind = DatasetKind::Mnist;
    let dir = b.path().join(kind.name());
    std::fs::create_dir(&dir).unwrap();
    for spec in kind.files() {
        std::fs::write(dir.join(spec.name), b"x").unwrap();
    }
    let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
    let offline = DownloadOptions {
        offline: true,
        ..quiet()
    };
    // Found: nothing is downloaded, even with an unreachable mirror.
    let found = find_or_download(kind, &dirs, a.path(), &offline).unwrap();
    assert_eq!(found, dir);
}

#[test]
fn find_or_download_says_where_it_looked_why_it_did_not_download_and_the_way_out() {
    let (a, b, to) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let kind = DatasetKind::FashionMnist;
    let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let unreachable = DownloadOptions {
        mirrors: Some(vec![format!("http://127.0.0.1:{port}/")]),
        ..quiet()
    };
    let offline = DownloadOptions {
        offline: true,
        ..unreachable.clone()
    };
    for (opts, why) in [
        (&offline, "Offline: not downloading it into"),
        (&unreachable, "failed too: could not get fashion-mnist/"),
    ] {
        let err = find_or_download(kind, &dirs, to.path(), opts)
            .unwrap_err()
            .to_string();
        for dir in &dirs {
            let place = dir.join(kind.name()).display().to_string();
            assert!(err.contains(&place), "names {place}: {err}");
        }
        assert!(err.contains(why), "says {why}: {err}");
        assert!(err.contains(&to.path().display().to_string()), "{err}");
        assert!(
            err.contains("`convnet download fashion-mnist --from FOLDER`")
                && err.contains("$CONVNET_DATA"),
            "gives the way out: {err}"
        );
        // A failed download leaves nothing behind.
        assert_eq!(names_in(to.path()), Vec::<String>::new());
    }
}
