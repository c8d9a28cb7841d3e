//! The SIMD instruction set the kernels use, chosen at run time.
//!
//! The workspace is built for the baseline x86-64 CPU (SSE2), as any crate
//! that depends on it is. The hot loops are compiled two more times, for
//! AVX2+FMA and for AVX-512, and every call picks one by [`level`]: the
//! widest level this CPU supports (detected once), or a lower one set by
//! [`set_level`] (to compare levels, or to test the baseline path on a
//! modern CPU). The kernels give the same results at every level up to
//! rounding (FMA rounds once where the baseline rounds twice).
//!
//! [`multiversion!`](crate::multiversion) writes the three copies of a
//! function and the dispatch. `matrixmultiply` (the sgemm) chooses its own
//! micro-kernel at run time, independently of [`set_level`].
//!
//! ```
//! use convnet_tensor::simd::{self, SimdLevel};
//!
//! let best = simd::detected();
//! assert!(best >= SimdLevel::Baseline);
//! // Every CPU can run the baseline.
//! simd::set_level(SimdLevel::Baseline)?;
//! assert_eq!(simd::level(), SimdLevel::Baseline);
//! simd::set_level(best)?;
//! assert_eq!("avx2".parse::<SimdLevel>()?, SimdLevel::Avx2Fma);
//! # Ok::<(), convnet_tensor::simd::SimdError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// An instruction-set level of the kernels, from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// What every CPU of the target has (SSE2 on x86-64): 4 floats per
    /// register, no FMA.
    Baseline = 0,
    /// AVX2 and FMA (x86-64-v3: Haswell, Zen and later): 8 floats per
    /// register, fused multiply-add.
    Avx2Fma = 1,
    /// AVX-512 F/VL/BW/DQ with AVX2 and FMA (Skylake-X, Ice Lake, Zen 4 and
    /// later): 16 floats per register, 32 registers.
    Avx512 = 2,
}

impl SimdLevel {
    /// Every level, narrowest first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Baseline, SimdLevel::Avx2Fma, SimdLevel::Avx512];

    /// The name [`FromStr`] reads and the bench prints: `baseline`, `avx2+fma`
    /// or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Baseline => "baseline",
            SimdLevel::Avx2Fma => "avx2+fma",
            SimdLevel::Avx512 => "avx512",
        }
    }

    /// The levels this CPU can run, narrowest first (always at least
    /// [`SimdLevel::Baseline`]).
    pub fn supported() -> Vec<SimdLevel> {
        let best = detected();
        SimdLevel::ALL.into_iter().filter(|&l| l <= best).collect()
    }

    fn from_u8(v: u8) -> SimdLevel {
        match v {
            2 => SimdLevel::Avx512,
            1 => SimdLevel::Avx2Fma,
            _ => SimdLevel::Baseline,
        }
    }
}

impl fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a level could not be parsed or chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimdError {
    /// The name is not one of the levels.
    #[error("unknown SIMD level {0:?}: expected baseline, avx2 (or avx2+fma) or avx512")]
    Unknown(String),
    /// The CPU lacks the level's instructions.
    #[error("this CPU cannot run the {requested} kernels (the widest it supports is {detected})")]
    Unsupported {
        /// The level asked for.
        requested: SimdLevel,
        /// The widest level of this CPU.
        detected: SimdLevel,
    },
}

impl FromStr for SimdLevel {
    type Err = SimdError;

    /// `baseline` (or `sse2`), `avx2` (or `avx2+fma`), `avx512`; case
    /// insensitive.
    fn from_str(s: &str) -> Result<Self, SimdError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "baseline" | "sse2" => Ok(SimdLevel::Baseline),
            "avx2" | "avx2+fma" | "avx2fma" => Ok(SimdLevel::Avx2Fma),
            "avx512" | "avx-512" | "avx512f" => Ok(SimdLevel::Avx512),
            _ => Err(SimdError::Unknown(s.to_string())),
        }
    }
}

/// The widest level this CPU supports, detected once.
pub fn detected() -> SimdLevel {
    static DETECTED: OnceLock<SimdLevel> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> SimdLevel {
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    let avx512 = is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq");
    match (avx2, avx512) {
        (true, true) => SimdLevel::Avx512,
        (true, false) => SimdLevel::Avx2Fma,
        _ => SimdLevel::Baseline,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> SimdLevel {
    SimdLevel::Baseline
}

/// [`LEVEL`] before the first [`level`] or [`set_level`].
const UNSET: u8 = u8::MAX;

/// The level in use, as a `u8`, or [`UNSET`].
static LEVEL: AtomicU8 = AtomicU8::new(UNSET);

/// The level the kernels use now: the one [`set_level`] chose, else
/// [`detected`]. One relaxed atomic load: cheap enough to call per row.
#[inline]
pub fn level() -> SimdLevel {
    match LEVEL.load(Ordering::Relaxed) {
        UNSET => {
            let best = detected();
            LEVEL.store(best as u8, Ordering::Relaxed);
            best
        }
        v => SimdLevel::from_u8(v),
    }
}

/// Makes the kernels use `level` from now on (for every thread). Errors if
/// this CPU cannot run it; [`detected`] restores the default.
///
/// Kernels already running finish at the level they started with.
pub fn set_level(level: SimdLevel) -> Result<(), SimdError> {
    let best = detected();
    if level > best {
        return Err(SimdError::Unsupported {
            requested: level,
            detected: best,
        });
    }
    LEVEL.store(level as u8, Ordering::Relaxed);
    Ok(())
}

/// Writes a function three times — for the baseline, AVX2+FMA and AVX-512
/// — and dispatches each call on [`level`].
///
/// The body is compiled into an `#[inline(always)]` inner function, which
/// each `#[target_feature]` copy inlines: the compiler vectorises its loops
/// for that instruction set. Functions the body calls are compiled with the
/// caller's features only if they are inlined (mark small ones
/// `#[inline(always)]`); closures in the body are not (give a parallel
/// kernel's per-task work its own multiversioned function). Arguments must be
/// plain identifiers; type parameters take one bound each
/// (`fn map<F: Fn(f32) -> f32>(…)`), so a closure argument is inlined into
/// every copy. Built on [`dispatch!`](crate::dispatch), which kernels whose
/// code depends on the vector width use directly.
///
/// ```
/// convnet_tensor::multiversion! {
///     /// `out[i] += a · x[i]`.
///     pub fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
///         for (o, &x) in out.iter_mut().zip(x) {
///             *o += a * x;
///         }
///     }
/// }
/// let mut y = [1.0, 2.0];
/// axpy(&mut y, 2.0, &[10.0, 20.0]);
/// assert_eq!(y, [21.0, 42.0]);
/// ```
#[macro_export]
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $(< $($g:ident : $bound:path),+ >)?
        ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name $(< $($g: $bound),+ >)? ($($arg: $ty),*) $(-> $ret)? {
            // The lanes and FMA parameters every `dispatch!` callee takes;
            // this body does not need them: the compiler chooses the width.
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp<const _L: usize, const _F: bool $($(, $g: $bound)+)?>($($arg: $ty),*) $(-> $ret)? $body
            $crate::dispatch!(imp [$($($g: $bound),+)?] [$($($g),+)?] ($($arg: $ty),*) $(-> $ret)?)
        }
    };
}

/// Calls `f::<LANES, FMA, P…>(args…)` compiled for a SIMD level: the one in
/// use ([`level`]), or (`at LANES, FMA;`) the one that the caller, itself
/// generic over the width, was instantiated for.
///
/// `LANES` is the number of `f32` a vector holds at that level (16 for
/// AVX-512, 8 otherwise: the baseline's SSE uses two registers per vector)
/// and `FMA` whether it fuses multiply-adds. `f` (and what it calls) must be
/// `#[inline(always)]`: it is compiled into one `#[target_feature]` function
/// per level, the only place where this crate names the levels' features.
/// The brackets declare and pass the extra generic parameters `P` of `f`
/// (`[const R: usize] [R]`; `[] []` when there are none); arguments are
/// plain identifiers with their types.
///
/// The second form serves code that is already running inside a width's
/// copy and wants one of its parts to be a function of its own (a register
/// block shape, so that the compiler allocates registers for it alone): it
/// calls that level's `#[target_feature]` copy when `(LANES, FMA)` is the
/// shape of the level in use, and `f` as it is otherwise (tests run the
/// 16-lane shapes on CPUs without AVX-512 that way).
///
/// ```
/// use convnet_tensor::dispatch;
///
/// #[inline(always)]
/// fn lanes<const L: usize, const F: bool>(out: &mut usize) {
///     *out = L;
/// }
/// let mut n = 0;
/// let out = &mut n;
/// dispatch!(lanes [] [] (out: &mut usize));
/// assert!(n == 8 || n == 16);
/// ```
#[macro_export]
macro_rules! dispatch {
    ($f:ident [$($decl:tt)*] [$($use:tt)*] ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {{
        #[cfg(target_arch = "x86_64")]
        {
            $crate::__simd_copies!($f [$($decl)*] [$($use)*] ($($arg: $ty),*) $(-> $ret)?);
            match $crate::simd::level() {
                // SAFETY: `level()` never exceeds what the CPU supports
                // (`set_level` refuses wider levels).
                $crate::simd::SimdLevel::Avx512 => unsafe { avx512::<$($use)*>($($arg),*) },
                // SAFETY: as above.
                $crate::simd::SimdLevel::Avx2Fma => unsafe { avx2::<$($use)*>($($arg),*) },
                $crate::simd::SimdLevel::Baseline => $f::<8, false, $($use)*>($($arg),*),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f::<8, false, $($use)*>($($arg),*)
        }
    }};
    (at $lanes:expr, $fma:expr; $f:ident [$($decl:tt)*] [$($use:tt)*]
        ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)?) => {{
        #[cfg(target_arch = "x86_64")]
        {
            $crate::__simd_copies!($f [$($decl)*] [$($use)*] ($($arg: $ty),*) $(-> $ret)?);
            match ($lanes, $fma, $crate::simd::level()) {
                // SAFETY: the CPU runs AVX-512 (the level in use).
                (16, true, $crate::simd::SimdLevel::Avx512) => unsafe { avx512::<$($use)*>($($arg),*) },
                // SAFETY: the CPU runs AVX2 and FMA (the level in use, or a
                // wider one).
                (8, true, $crate::simd::SimdLevel::Avx2Fma | $crate::simd::SimdLevel::Avx512) => unsafe {
                    avx2::<$($use)*>($($arg),*)
                },
                _ => $f::<{ $lanes }, { $fma }, $($use)*>($($arg),*),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f::<{ $lanes }, { $fma }, $($use)*>($($arg),*)
        }
    }};
}

/// The `#[target_feature]` copies of [`dispatch!`](crate::dispatch): `avx512`
/// and `avx2`, generic over `f`'s extra parameters. Not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __simd_copies {
    ($f:ident [$($decl:tt)*] [$($use:tt)*] ( $($arg:ident : $ty:ty),* ) $(-> $ret:ty)?) => {
        #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        fn avx512<$($decl)*>($($arg: $ty),*) $(-> $ret)? {
            $f::<16, true, $($use)*>($($arg),*)
        }
        #[target_feature(enable = "avx2,fma")]
        #[allow(clippy::too_many_arguments)]
        fn avx2<$($decl)*>($($arg: $ty),*) $(-> $ret)? {
            $f::<8, true, $($use)*>($($arg),*)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for l in SimdLevel::ALL {
            assert_eq!(l.name().parse::<SimdLevel>(), Ok(l));
        }
        assert_eq!("AVX2".parse::<SimdLevel>(), Ok(SimdLevel::Avx2Fma));
        let err = "neon".parse::<SimdLevel>().unwrap_err();
        assert!(err.to_string().contains("\"neon\""), "{err}");
    }

    #[test]
    fn a_level_the_cpu_lacks_is_refused() {
        let best = detected();
        assert!(SimdLevel::supported().contains(&SimdLevel::Baseline));
        assert_eq!(SimdLevel::supported().last(), Some(&best));
        if let Some(&wider) = SimdLevel::ALL.iter().find(|&&l| l > best) {
            let err = set_level(wider).unwrap_err();
            assert_eq!(
                err,
                SimdError::Unsupported {
                    requested: wider,
                    detected: best
                }
            );
            assert!(err.to_string().contains(wider.name()), "{err}");
        }
        // Refusing leaves the level unchanged (other tests may run at the
        // same time, so only the supported range is checked).
        assert!(level() <= best);
    }
}
