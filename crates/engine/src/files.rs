//! File helpers shared by every crate: atomic replacement of a file or a directory (a temporary
//! sibling, fsynced, then renamed into place) and SHA-256 content hashes.
//!
//! A reader of `path` sees either the old content or the complete new one, never a partial file:
//! the temporary sibling lives in the same directory (so the rename is atomic), its data is
//! fsynced before the rename and the directory after it. On any error the temporary is removed.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What went wrong writing or hashing a file; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O operation on `path` failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted ("write", "rename into place", …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The path has no final component to write to (e.g. `/` or `..`).
    #[error("{path}: not a file or directory name")]
    NoFileName {
        /// The path.
        path: PathBuf,
    },
    /// A directory was to be replaced, but `path` exists and is not a directory.
    #[error("{path} exists and is not a directory; refusing to replace it")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
}

impl FileError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Io { path, .. }
            | FileError::NoFileName { path }
            | FileError::NotADirectory { path } => path,
        }
    }
}

// The engine's I/O error already names the path; the action is kept in the message.
// (Belongs with `EngineError` in error.rs; kept here while that file is being rewritten.)

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FileError + 'a {
    move |source| FileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The directory holding `path` (`.` for a bare file name) and the name of its last component.
fn parent_and_name(path: &Path) -> Result<(PathBuf, String), FileError> {
    let name = path
        .file_name()
        .ok_or_else(|| FileError::NoFileName {
            path: path.to_path_buf(),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// A temporary-file builder whose files and directories get the permissions `std::fs::write` and
/// `std::fs::create_dir` would give (0666 / 0777 less the umask), not tempfile's private 0600.
fn builder<'a>(prefix: &'a str, suffix: &'a str, dir: bool) -> tempfile::Builder<'a, 'a> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(if dir {
            0o777
        } else {
            0o666
        }));
    }
    #[cfg(not(unix))]
    let _ = dir;
    b
}

/// Fsyncs a directory so a rename inside it survives a crash (best effort: not every platform
/// can open a directory).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Replaces the file `path` atomically with what `fill` writes into the temporary file it is
/// given (with that file's path, e.g. to verify it before it goes into place). Creates the parent
/// directory if needed. When `fill` fails nothing is renamed and its error is returned.
pub fn write_atomic_with<E: From<FileError>>(
    path: &Path,
    fill: impl FnOnce(&mut File, &Path) -> Result<(), E>,
) -> Result<(), E> {
    let (dir, name) = parent_and_name(path)?;
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let prefix = format!(".{name}.");
    let mut tmp = builder(&prefix, ".tmp", false)
        .tempfile_in(&dir)
        .map_err(io("create a temporary file in", &dir))?;
    let tmp_path = tmp.path().to_path_buf();
    fill(tmp.as_file_mut(), &tmp_path)?;
    tmp.as_file_mut()
        .flush()
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(io("write", &tmp_path))?;
    tmp.persist(path)
        .map_err(|e| io("rename into place", path)(e.error))?;
    sync_dir(&dir);
    Ok(())
}

/// Replaces the file `path` atomically with `bytes` (see the module doc).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomic_with(path, |f, tmp| f.write_all(bytes).map_err(io("write", tmp)))
}

/// Replaces the directory `dir` atomically with what `fill` writes into the fresh temporary
/// directory it is given (a hidden sibling of `dir`). An existing `dir` is first renamed aside and
/// removed once the new one is in place; if that final rename fails the old one is put back. On
/// any error nothing named `dir` is created and the temporary directory is removed. The parent of
/// `dir` must exist.
pub fn write_dir_atomic<E: From<FileError>>(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let (parent, name) = parent_and_name(dir)?;
    if !parent.is_dir() {
        return Err(FileError::Io {
            action: "find the parent directory",
            path: parent,
            source: std::io::ErrorKind::NotFound.into(),
        }
        .into());
    }
    if dir.exists() && !dir.is_dir() {
        return Err(FileError::NotADirectory {
            path: dir.to_path_buf(),
        }
        .into());
    }
    let prefix = format!(".{name}.tmp-");
    let tmp = builder(&prefix, "", true)
        .tempdir_in(&parent)
        .map_err(io("create a temporary directory in", &parent))?;
    // On error `tmp` is dropped, which removes it with everything `fill` wrote.
    fill(tmp.path())?;
    sync_dir(tmp.path());
    let old = if dir.exists() {
        let prefix = format!(".{name}.old-");
        let old = builder(&prefix, "", true)
            .tempdir_in(&parent)
            .map_err(io("create a temporary directory in", &parent))?
            .keep();
        // `old` is an empty directory: renaming a directory onto it replaces it.
        std::fs::rename(dir, &old).map_err(|e| {
            let _ = std::fs::remove_dir(&old);
            io("move aside", dir)(e)
        })?;
        Some(old)
    } else {
        None
    };
    let tmp_path = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp_path, dir) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, dir);
        }
        let _ = std::fs::remove_dir_all(&tmp_path);
        return Err(io("rename into place", dir)(e).into());
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(old);
    }
    sync_dir(&parent);
    Ok(())
}

/// Feeds the bytes of the file `path` into `hasher`.
fn hash_into(hasher: &mut Sha256, path: &Path) -> Result<(), FileError> {
    let mut f = File::open(path).map_err(io("open", path))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io("read", path))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of the file `path`, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, FileError> {
    let mut h = Sha256::new();
    hash_into(&mut h, path)?;
    Ok(hex(h))
}

/// SHA-256 (lowercase hex) identifying a model or data path: for a file, [`sha256_file`]; for a
/// directory, of its `*.json`, `*.safetensors` and `*.gguf` files in name order, each as its name
/// followed by its bytes (a directory with none of them hashes as if it were a file, which fails).
pub fn content_sha256(path: &Path) -> Result<String, FileError> {
    if !path.is_dir() {
        return sha256_file(path);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io("list", path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.ends_with(".safetensors") || n.ends_with(".json") || n.ends_with(".gguf")
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return sha256_file(path);
    }
    let mut h = Sha256::new();
    for f in files {
        h.update(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        hash_into(&mut h, &f)?;
    }
    Ok(hex(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("adasamp-files-{name}-"))
            .tempdir()
            .unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let d = scratch("file");
        let p = d.path().join("sub").join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(entries(&d.path().join("sub")), ["a.txt"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            let plain = d.path().join("plain");
            std::fs::write(&plain, b"x").unwrap();
            let want = std::fs::metadata(&plain).unwrap().permissions().mode();
            assert_eq!(mode, want, "same permissions as std::fs::write");
        }
    }

    #[test]
    fn failed_fill_keeps_the_old_file() {
        let d = scratch("fail");
        let p = d.path().join("a.txt");
        std::fs::write(&p, b"old").unwrap();
        let r: Result<(), FileError> = write_atomic_with(&p, |f, tmp| {
            f.write_all(b"partial").map_err(io("write", tmp))?;
            Err(FileError::NoFileName { path: tmp.into() })
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(entries(d.path()), ["a.txt"]);
    }

    #[test]
    fn no_file_name_is_an_error() {
        assert!(matches!(
            write_atomic(Path::new("/"), b"x"),
            Err(FileError::NoFileName { .. })
        ));
    }

    #[test]
    fn write_dir_atomic_replaces_and_cleans_up() {
        let d = scratch("dir");
        let target = d.path().join("ckpt");
        write_dir_atomic(&target, |t| write_atomic(&t.join("old"), b"1")).unwrap();
        write_dir_atomic(&target, |t| write_atomic(&t.join("new"), b"2")).unwrap();
        assert_eq!(entries(&target), ["new"]);
        assert_eq!(entries(d.path()), ["ckpt"]);
        // a failing fill leaves the existing directory alone and no temporary behind
        let r = write_dir_atomic(&target, |t| {
            write_atomic(&t.join("partial"), b"3")?;
            Err(FileError::NoFileName { path: t.into() })
        });
        assert!(r.is_err());
        assert_eq!(entries(&target), ["new"]);
        assert_eq!(entries(d.path()), ["ckpt"]);
        // a failing fill with no existing directory creates nothing
        let fresh = d.path().join("fresh");
        let r = write_dir_atomic(&fresh, |t| Err(FileError::NoFileName { path: t.into() }));
        assert!(r.is_err());
        assert!(!fresh.exists());
        // a file in the way is refused
        std::fs::write(d.path().join("file"), b"x").unwrap();
        assert!(matches!(
            write_dir_atomic(&d.path().join("file"), |_| Ok::<(), FileError>(())),
            Err(FileError::NotADirectory { .. })
        ));
    }

    #[test]
    fn hashes() {
        let d = scratch("hash");
        let p = d.path().join("m.bin");
        std::fs::write(&p, b"hello").unwrap();
        let hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(sha256_file(&p).unwrap(), hello);
        assert_eq!(content_sha256(&p).unwrap(), hello);
        // a directory: names and contents of its model files, in name order
        let m = d.path().join("model");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("config.json"), b"{}").unwrap();
        std::fs::write(m.join("notes.txt"), b"ignored").unwrap();
        let a = content_sha256(&m).unwrap();
        std::fs::write(m.join("notes.txt"), b"changed").unwrap();
        assert_eq!(content_sha256(&m).unwrap(), a);
        std::fs::write(m.join("config.json"), b"{ }").unwrap();
        assert_ne!(content_sha256(&m).unwrap(), a);
        assert!(matches!(
            sha256_file(&d.path().join("missing")),
            Err(FileError::Io { action: "open", .. })
        ));
    }
}
