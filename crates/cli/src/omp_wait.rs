//! How llama.cpp's CPU threads wait for each other.
//!
//! llama.cpp runs a forward on OpenMP threads (libgomp) that meet at a barrier after every
//! operation — hundreds per forward. libgomp's default is to *spin* at a barrier (up to ~300,000
//! polls) before sleeping. On a machine whose cores are shared with other processes (more runnable
//! threads than cores) a spinning thread holds the core its partner needs to reach the barrier:
//! on this project's 2-core machine at load average 7–11, replaying 6 records took 94–150 s with
//! the default and 7–10 s with passive waiting (docs/training.md, "Replay"). libgomp reads its
//! wait policy from the environment once, when the process starts, so a command that must not
//! stall re-executes itself with `OMP_WAIT_POLICY=PASSIVE` before doing anything — unless the
//! caller chose a policy (`OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` set), which is kept.

use std::ffi::OsString;

/// The environment variable libgomp reads its wait policy from.
pub const WAIT_POLICY: &str = "OMP_WAIT_POLICY";

/// libgomp's spin-count variable; setting it is also a choice of wait behaviour.
const SPIN_COUNT: &str = "GOMP_SPINCOUNT";

/// Whether the process must be re-executed with a passive wait policy: neither variable is set.
fn needs_passive(get: impl Fn(&str) -> Option<OsString>) -> bool {
    get(WAIT_POLICY).is_none() && get(SPIN_COUNT).is_none()
}

/// Replaces the process with itself (same executable and arguments) under
/// `OMP_WAIT_POLICY=PASSIVE` when the caller set no OpenMP wait policy; returns when nothing had
/// to be done, or when the re-execution failed (the command then runs with libgomp's default,
/// and a warning says so).
pub fn ensure_passive_wait() {
    if !needs_passive(|k| std::env::var_os(k)) {
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let exe = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("warning: cannot find this executable to set {WAIT_POLICY}: {e}");
                return;
            }
        };
        let e = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(WAIT_POLICY, "PASSIVE")
            .exec();
        eprintln!("warning: could not re-execute with {WAIT_POLICY}=PASSIVE: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_the_caller_chose_is_kept() {
        let none = |_: &str| None;
        assert!(needs_passive(none));
        let policy = |k: &str| (k == WAIT_POLICY).then(|| OsString::from("ACTIVE"));
        assert!(!needs_passive(policy));
        let spin = |k: &str| (k == SPIN_COUNT).then(|| OsString::from("1000"));
        assert!(!needs_passive(spin));
    }
}
