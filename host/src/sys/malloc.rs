//! glibc allocator settings for training and evaluation.
//!
//! Why: a Burn training step allocates and frees tensors of several MB (a batch of 128
//! 16-channel 48x48 activations is 19 MB), many live at once. glibc's defaults hand the
//! free top of a heap back to the kernel once it exceeds a trim threshold (128 KiB,
//! raised at run time to twice the largest block freed so far), which a step's freed
//! tensors together pass; the next step then faults the same pages in again, each zeroed
//! by the kernel and, on a multi-core VM, followed by TLB shoot-downs. `perf` put 28% of
//! a training run's time in the kernel for exactly that (BENCHMARKS.md, "Allocator").
//! Keeping freed memory in the process costs at most the run's peak heap, a few hundred
//! MB here.
//!
//! A user's own settings win: with any of glibc's `MALLOC_*_` variables or
//! `GLIBC_TUNABLES` in the environment, nothing is changed.

/// What [`keep_freed_memory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    /// The thresholds below were set.
    Applied,
    /// The environment carries the user's own allocator settings; they were left alone.
    UserSettings,
    /// glibc refused a value (it bounds them by the word size): its defaults stay.
    Refused,
    /// Not glibc (another libc or OS): nothing to do.
    Unsupported,
}

/// Largest block served from the heap rather than by its own `mmap` (32 MiB: glibc's
/// ceiling on 64-bit; a larger value is refused). Fixing it also stops glibc from moving
/// the threshold around at run time.
pub const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of a heap that stays in the process before glibc trims it.
pub const TRIM_THRESHOLD: i32 = 1 << 30;
/// Extra memory asked of the kernel whenever the heap grows, so that it grows rarely.
pub const TOP_PAD: i32 = 64 << 20;

/// Environment variables through which a user sets glibc's allocator; see module docs.
const USER_VARS: [&str; 5] = [
    "GLIBC_TUNABLES",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_ARENA_MAX",
];

static TUNING: std::sync::OnceLock<Tuning> = std::sync::OnceLock::new();

/// Keep freed memory in the process (see the module docs). Call first thing in `main`,
/// before other threads start; later calls return the first one's outcome.
pub fn keep_freed_memory() -> Tuning {
    *TUNING.get_or_init(|| {
        if USER_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            Tuning::UserSettings
        } else {
            apply()
        }
    })
}

/// What [`keep_freed_memory`] did in this process, if it was called: benchmarks print
/// it, since it moves training throughput by a third on some hosts.
pub fn tuning() -> Option<Tuning> {
    TUNING.get().copied()
}

impl std::fmt::Display for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tuning::Applied => "glibc malloc keeps freed memory",
            Tuning::UserSettings => "glibc malloc as the environment sets it",
            Tuning::Refused => "glibc malloc defaults (tuning refused)",
            Tuning::Unsupported => "system allocator",
        })
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> Tuning {
    // SAFETY (the `unsafe` below): mallopt only changes allocator parameters; glibc takes
    // its arena lock for it, and the arguments are plain integers.
    let settings = [
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (libc::M_TOP_PAD, TOP_PAD),
    ];
    // mallopt returns 1 when it took the value.
    let all_taken = settings
        .iter()
        .all(|&(param, value)| unsafe { libc::mallopt(param, value) } == 1);
    if all_taken {
        Tuning::Applied
    } else {
        Tuning::Refused
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> Tuning {
    Tuning::Unsupported
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Minor page faults taken by the calling thread so far.
    fn minor_faults() -> i64 {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage fills the struct it is given; RUSAGE_THREAD is Linux's.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
        assert_eq!(rc, 0, "getrusage failed");
        // SAFETY: rc == 0, so the struct was written.
        unsafe { usage.assume_init() }.ru_minflt
    }

    /// One step's worth of tensors: three blocks the size of a batch's activations (128
    /// faces x 16 channels x 48x48 floats = 19 MB), each touched page by page, all live
    /// at once, then freed.
    fn step() {
        let blocks: Vec<Vec<u8>> = (0..3).map(|_| vec![1u8; 19 << 20]).collect();
        std::hint::black_box(&blocks);
    }

    #[test]
    fn freed_step_memory_is_reused_without_page_faults() {
        match keep_freed_memory() {
            Tuning::Applied => {}
            other => {
                eprintln!("skipped: allocator not tuned here ({other:?})");
                return;
            }
        }
        step();
        step();
        let before = minor_faults();
        step();
        let faults = minor_faults() - before;
        // 57 MB is 14,592 pages. glibc's defaults hand the freed blocks back to the kernel
        // (the heap's free top exceeds twice the largest block) and fault them in again.
        assert!(
            faults < 100,
            "{faults} page faults re-using three freed 19 MB blocks"
        );
    }
}
