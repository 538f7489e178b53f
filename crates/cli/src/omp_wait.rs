//! How llama.cpp's CPU threads wait for each other.
//!
//! llama.cpp runs a forward on OpenMP threads (libgomp) that meet at a barrier after every
//! operation — hundreds per forward. libgomp's default is to *spin* at a barrier (up to ~300,000
//! polls) before sleeping. On a machine whose cores are shared with other processes (more
//! runnable threads than cores) a spinning thread holds the core its partner needs to reach the
//! barrier: on this project's 2-core machine at load average 7–11, replaying 6 records took
//! 94–150 s with the default, 23 s with `GOMP_SPINCOUNT=10000` and 7–10 s with
//! `OMP_WAIT_POLICY=PASSIVE`; decoding ran at 3.6 tokens/s by default against 77 passive. On a
//! quiet machine the order turns round: passive waiting cut batch-1 decoding from ~110 to ~42
//! tokens/s (and batch 8 from ~185 to ~145), while a spin count of 10,000 decoded as fast as the
//! default (108 / 162–198 against 86–113 / 195–204 tokens/s, alternating runs of
//! `bench-generate`, load average 1.6–1.8; docs/performance.md, "How llama.cpp's threads wait").
//! So every command runs with a bounded spin, [`SPIN_LIMIT`] polls, then sleeps.
//!
//! libgomp reads these variables once, when the process starts, so the binary re-executes itself
//! with `GOMP_SPINCOUNT` set before doing anything — unless the caller chose a policy
//! (`OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` set), which is kept.

use std::ffi::OsString;

/// The environment variable libgomp reads its wait policy from (`ACTIVE` / `PASSIVE`).
pub const WAIT_POLICY: &str = "OMP_WAIT_POLICY";

/// libgomp's spin-count variable: polls at a barrier before a thread sleeps.
pub const SPIN_COUNT: &str = "GOMP_SPINCOUNT";

/// The spin count every command runs with unless the caller chose otherwise.
pub const SPIN_LIMIT: &str = "10000";

/// Whether the process must be re-executed with a bounded spin: neither variable is set.
fn needs_bound(get: impl Fn(&str) -> Option<OsString>) -> bool {
    get(WAIT_POLICY).is_none() && get(SPIN_COUNT).is_none()
}

/// Replaces the process with itself (same executable and arguments) under
/// `GOMP_SPINCOUNT=`[`SPIN_LIMIT`] when the caller set no OpenMP wait policy; returns when nothing
/// had to be done, or when the re-execution failed (the command then runs with libgomp's
/// default, and a warning says so).
pub fn ensure_bounded_spin() {
    if !needs_bound(|k| std::env::var_os(k)) {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let exe = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("warning: cannot find this executable to set {SPIN_COUNT}: {e}");
                return;
            }
        };
        let e = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(SPIN_COUNT, SPIN_LIMIT)
            .exec();
        eprintln!("warning: could not re-execute with {SPIN_COUNT}={SPIN_LIMIT}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_the_caller_chose_is_kept() {
        let none = |_: &str| None;
        assert!(needs_bound(none));
        let policy = |k: &str| (k == WAIT_POLICY).then(|| OsString::from("ACTIVE"));
        assert!(!needs_bound(policy));
        let spin = |k: &str| (k == SPIN_COUNT).then(|| OsString::from("1000"));
        assert!(!needs_bound(spin));
    }
}
