//! What survives a restart: the sensor's instance id, the last batch
//! number, and how far each followed file has been read.
//!
//! The state file is replaced atomically (temporary file, fsync, rename)
//! after every batch has reached every output, and every spooled batch
//! carries the positions it covers. On start the newer of the two wins, so
//! a crash between writing a batch and writing the state neither re-reads
//! (duplicates) nor skips (loss) any line.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// Where a followed file has been read up to: the end of the last whole
/// line whose hits are in a batch. The device and inode tell a rotated file
/// from the one the offset belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorState {
    /// Random id of this state directory; batch ids start with it, so two
    /// sensors (or a wiped state directory) never reuse a batch id.
    pub instance: String,
    /// Number of the last batch handed to the outputs.
    pub seq: u64,
    /// Positions of followed files, by path as configured.
    pub files: BTreeMap<String, FilePosition>,
}

impl SensorState {
    fn fresh() -> Self {
        SensorState {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            seq: 0,
            files: BTreeMap::new(),
        }
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("state.json")
    }

    /// Reads the state, or starts a fresh one when there is none. A state
    /// file that exists but cannot be parsed is an error, not a fresh
    /// start: starting over would re-read every file from the beginning.
    pub fn load(state_dir: &Path) -> Result<SensorState, Error> {
        let path = Self::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::State(format!(
                    "{}: {e} (move it away to start over; files would then be read from the start)",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::fresh()),
            Err(e) => Err(Error::Io(format!("{}: {e}", path.display()))),
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::State(format!("encoding state: {e}")))?;
        write_atomic(&Self::path(state_dir), &bytes)
    }
}

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old
/// content or the new, never a mix: temporary file, fsync, rename, fsync
/// of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_fresh_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SensorState::load(dir.path()).unwrap();
        assert_eq!(s.seq, 0);
        s.seq = 7;
        s.files.insert(
            "/var/log/a.log".into(),
            FilePosition {
                dev: 1,
                ino: 2,
                offset: 3,
            },
        );
        s.save(dir.path()).unwrap();
        assert_eq!(SensorState::load(dir.path()).unwrap(), s);
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(SensorState::path(dir.path()), b"{not json").unwrap();
        let err = SensorState::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
