//! A service's data directory, held exclusively for the life of the process: two instances
//! writing one embedded store would corrupt it.

use std::{
    fs::{self, File, TryLockError},
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is in use by another process")]
    InUse(PathBuf),
}

pub struct DataDir {
    path: PathBuf,
    // Dropping the file releases the lock.
    _lock: File,
}

impl DataDir {
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        let io = |source| DataDirError::Io {
            path: path.to_owned(),
            source,
        };
        fs::create_dir_all(path).map_err(io)?;
        let lock = File::create(path.join("LOCK")).map_err(io)?;
        match lock.try_lock() {
            Ok(()) => Ok(DataDir {
                path: path.to_owned(),
                _lock: lock,
            }),
            Err(TryLockError::WouldBlock) => Err(DataDirError::InUse(path.to_owned())),
            Err(TryLockError::Error(source)) => Err(io(source)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(&dir.path().join("svc")).unwrap();
        assert!(matches!(
            DataDir::open(first.path()),
            Err(DataDirError::InUse(_))
        ));
        drop(first);
        DataDir::open(&dir.path().join("svc")).unwrap();
    }
}
