//! The WAL as a file in the state directory (`DIR/xapi.wal`).
//!
//! `sync` is `fdatasync`; `replace` writes a temporary file, syncs it,
//! renames it over the log and syncs the directory, so a crash during
//! compaction leaves either the old log or the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use xenapi::wal::{Storage, StorageError};

/// A WAL file.
pub struct FileStorage {
    path: PathBuf,
    dir: PathBuf,
    file: File,
}

impl FileStorage {
    /// Opens (creating) `dir/xapi.wal`.
    pub fn open(dir: &Path) -> std::io::Result<FileStorage> {
        let path = dir.join("xapi.wal");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        Ok(FileStorage {
            path,
            dir: dir.to_path_buf(),
            file,
        })
    }
}

fn io(_: std::io::Error) -> StorageError {
    StorageError("I/O error on the WAL file")
}

impl Storage for FileStorage {
    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.file.write_all(bytes).map_err(io)
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        self.file.sync_data().map_err(io)
    }
    fn read_all(&mut self) -> Result<Vec<u8>, StorageError> {
        let mut v = Vec::new();
        File::open(&self.path)
            .and_then(|mut f| f.read_to_end(&mut v))
            .map_err(io)?;
        Ok(v)
    }
    fn truncate(&mut self, len: u64) -> Result<(), StorageError> {
        self.file.set_len(len).map_err(io)?;
        self.file.sync_all().map_err(io)
    }
    fn replace(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let tmp = self.dir.join("xapi.wal.tmp");
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &self.path).map_err(io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        self.file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_truncate_replace() {
        let dir = std::env::temp_dir().join(format!("xcp-sim-storage-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut s = FileStorage::open(&dir).unwrap();
        s.append(b"hello").unwrap();
        s.sync().unwrap();
        assert_eq!(s.read_all().unwrap(), b"hello");
        s.truncate(2).unwrap();
        s.append(b"!").unwrap();
        assert_eq!(s.read_all().unwrap(), b"he!");
        s.replace(b"new").unwrap();
        s.append(b"+").unwrap();
        assert_eq!(s.read_all().unwrap(), b"new+");
        fs::remove_dir_all(&dir).unwrap();
    }
}
