//! Helpers shared by the `adasamp` binary's integration tests (each test file is its own crate,
//! so not every helper is used by every one).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Runs the `adasamp` binary built for these tests with `args`.
pub fn adasamp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adasamp"))
        .args(args)
        .output()
        .expect("run adasamp")
}

/// Runs the `adasamp` binary with `args` in the working directory `cwd`.
pub fn adasamp_in(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adasamp"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run adasamp")
}

/// A fresh (emptied) temporary directory unique to this test process and `name`. Directories
/// of the same `name` left by test processes that have ended are removed first (on Linux, where
/// `/proc` tells), so repeated runs do not pile up their files.
pub fn tmpdir(name: &str) -> PathBuf {
    let prefix = format!("adasamp-cli-{name}-");
    let root = std::env::temp_dir();
    if Path::new("/proc/self").exists() {
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let file = e.file_name();
            let pid = file.to_str().and_then(|f| f.strip_prefix(&prefix));
            if let Some(pid) = pid.filter(|p| p.parse::<u32>().is_ok()) {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let d = root.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A command's standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A command's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Shape and f32 data of the `logits` tensor of a safetensors file.
pub fn read_logits(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("logits").unwrap();
    (
        t.shape().to_vec(),
        t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    )
}

/// Whether the default model is in the engine's cache ($ADASAMP_HOME or ~/.cache/adasamp); if
/// not, says which tests are skipped.
pub fn default_model_present(what: &str) -> bool {
    let present =
        adasamp_engine::fetch::cached_path(&adasamp_engine::fetch::DEFAULT_MODEL).exists();
    if !present {
        eprintln!("note: default model absent; run `adasamp model fetch` to enable {what}");
    }
    present
}

/// Starts `adasamp serve --port 0` with `args` (its standard error discarded); returns the
/// process and the address it listens on (`HOST:PORT`, from its `listening on` line).
pub fn start_server(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_adasamp"))
        .args(["serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run adasamp serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(a) = l.strip_prefix("listening on http://") {
                    return (child, a.trim().to_string());
                }
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("adasamp serve ended before listening");
            }
        }
    }
}

/// Spawns `cmd` (standard output discarded, standard error piped) and returns it once `path`
/// holds at least `n` complete lines — or once it ended, or 600 s passed — for the caller to
/// kill or wait for.
pub fn spawn_until_lines(cmd: &mut Command, path: &Path, n: usize) -> Child {
    spawn_until(cmd, || {
        std::fs::read_to_string(path)
            .map(|t| t.matches('\n').count())
            .unwrap_or(0)
            >= n
    })
}

/// Spawns `cmd` (standard output discarded, standard error piped) and returns it once `done()`
/// holds — or once it ended, or 600 s passed — for the caller to kill or wait for.
pub fn spawn_until(cmd: &mut Command, done: impl Fn() -> bool) -> Child {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run adasamp");
    let t0 = std::time::Instant::now();
    loop {
        if done() || t0.elapsed() > std::time::Duration::from_secs(600) {
            return child;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
