//! How much memory the machine can give, and byte counts for people.
//!
//! Models and batches are sized by their users (`--image-size`,
//! `--batch-size`, a checkpoint's configuration), so a request can exceed the
//! machine by orders of magnitude. Allocating first and failing later aborts
//! the process ("memory allocation of ... failed") or wakes the kernel's
//! out-of-memory killer; comparing an estimate with [`available_bytes`]
//! first turns that into an error that says what was asked and what exists.
//!
//! ```
//! use convnet_tensor::memory::{available_bytes, human_bytes};
//!
//! assert_eq!(human_bytes(1536), "1.5 KiB");
//! assert_eq!(human_bytes(3 << 40), "3.0 TiB");
//! if cfg!(target_os = "linux") {
//!     // Linux says how much it can give without swapping.
//!     assert!(available_bytes().unwrap() > 0);
//! }
//! ```

use std::path::Path;

/// The environment variable that caps the memory convnet plans to use, for
/// shared machines: bytes, or a number with a `K`, `M`, `G` or `T` suffix
/// (powers of 1024), e.g. `CONVNET_MEMORY_LIMIT=8G`.
pub const MEMORY_LIMIT_ENV: &str = "CONVNET_MEMORY_LIMIT";

/// The memory this process can still use, in bytes: the smallest of Linux's
/// `MemAvailable` (what can be allocated without swapping), what the
/// process's cgroup (a container's memory limit) leaves, and the user's cap
/// [`MEMORY_LIMIT_ENV`]. `None` where none of them is known (other systems,
/// no cap): callers then skip their checks. A cap that does not parse is
/// ignored here; programs report it with [`memory_limit_from_env`].
pub fn available_bytes() -> Option<u64> {
    let system = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| parse_meminfo(&s));
    let cgroup = cgroup_headroom(Path::new("/sys/fs/cgroup"));
    let user = memory_limit_from_env().ok().flatten();
    [system, cgroup, user].into_iter().flatten().min()
}

/// The cap set by [`MEMORY_LIMIT_ENV`]: `Ok(None)` if unset, an error
/// naming the variable and the value if it does not parse.
pub fn memory_limit_from_env() -> Result<Option<u64>, String> {
    match std::env::var(MEMORY_LIMIT_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(format!(
            "${MEMORY_LIMIT_ENV} is not valid text: {}",
            v.to_string_lossy()
        )),
        Ok(v) => parse_size(&v).map(Some).ok_or_else(|| {
            format!(
                "${MEMORY_LIMIT_ENV}={v:?} is not a size: give bytes or a number with K, M, G \
                 or T (powers of 1024), e.g. 8G"
            )
        }),
    }
}

/// `"512"`, `"64K"`, `"1.5G"`, `"2 TiB"` → bytes (powers of 1024; `B`,
/// `iB` and case are optional). `None` for anything else, zero or negative.
///
/// ```
/// use convnet_tensor::memory::parse_size;
/// assert_eq!(parse_size("8G"), Some(8 << 30));
/// assert_eq!(parse_size("1.5 MiB"), Some(3 << 19));
/// assert_eq!(parse_size("lots"), None);
/// ```
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let value: f64 = t[..digits_end].parse().ok()?;
    let unit = t[digits_end..].trim().to_ascii_uppercase();
    let unit = unit.strip_suffix('B').unwrap_or(&unit);
    let unit = unit.strip_suffix('I').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    let bytes = value * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
///
/// ```
/// use convnet_tensor::memory::parse_meminfo;
/// let text = "MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n";
/// assert_eq!(parse_meminfo(text), Some(20_000_000 * 1024));
/// assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
/// ```
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// What a cgroup v2 memory limit leaves: `memory.max - memory.current` of
/// the folder `root` (the process's cgroup as mounted in a container), or
/// `None` without a limit (`max`) or without the files.
fn cgroup_headroom(root: &Path) -> Option<u64> {
    let read = |name: &str| std::fs::read_to_string(root.join(name)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?;
    let current: u64 = read("memory.current")?.trim().parse().ok()?;
    Some(max.saturating_sub(current))
}

/// A byte count for messages (moved to [`crate::format`], kept here for
/// existing callers).
pub use crate::format::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_lines_and_units() {
        let text = "MemTotal:       24576000 kB\nMemFree:         1000 kB\n\
                    MemAvailable:   12288000 kB\nBuffers:           0 kB\n";
        assert_eq!(parse_meminfo(text), Some(12_288_000 * 1024));
        assert_eq!(parse_meminfo("MemAvailable: 77\n"), Some(77));
        assert_eq!(parse_meminfo("MemAvailable: x kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: 5 MB\n"), None);
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn cgroup_limit_lowers_what_is_available() {
        let dir = std::env::temp_dir().join(format!("convnet-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(cgroup_headroom(&dir), None, "no files, no limit");
        std::fs::write(dir.join("memory.max"), "max\n").unwrap();
        std::fs::write(dir.join("memory.current"), "1000\n").unwrap();
        assert_eq!(cgroup_headroom(&dir), None, "`max` is no limit");
        std::fs::write(dir.join("memory.max"), "4096\n").unwrap();
        assert_eq!(cgroup_headroom(&dir), Some(3096));
        std::fs::write(dir.join("memory.current"), "5000\n").unwrap();
        assert_eq!(
            cgroup_headroom(&dir),
            Some(0),
            "over the limit leaves nothing"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sizes_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size(" 2 TiB "), Some(2 << 40));
        assert_eq!(parse_size("3MB"), Some(3 << 20));
        for bad in ["", "G", "-1G", "0", "1X", "1e3", "1..2", "99999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
