//! [`RegionDir`]: the named regions present on the host, for `knit ls` and `knit gc`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::name::{RegionName, SHM_DIR};

/// A directory of POSIX shared memory objects (`/dev/shm` on Linux), listed by region name.
#[derive(Clone, Debug)]
pub struct RegionDir {
    path: PathBuf,
}

impl RegionDir {
    /// The system's shared memory directory, where [`crate::Mapping::create_named`] creates.
    pub fn system() -> Self {
        RegionDir {
            path: PathBuf::from(SHM_DIR),
        }
    }

    /// Another directory laid out the same way (for tests and unusual mounts).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        RegionDir { path: path.into() }
    }

    /// The directory listed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The valid region names in the directory (MAP-2, MAP-8), sorted. Entries whose name is not
    /// exactly `knit-[0-9a-f]{32}`, and entries that are not regular files (a symbolic link
    /// or directory planted under a region-like name), are skipped: they are not regions.
    pub fn names(&self) -> Result<Vec<RegionName>> {
        let subject = self.path.display().to_string();
        let entries =
            std::fs::read_dir(&self.path).map_err(|e| Error::os("read_dir", &subject, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::os("read_dir", &subject, e))?;
            let Some(text) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(name) = RegionName::parse(&text) else {
                continue;
            };
            // `file_type` does not follow symbolic links.
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

impl Default for RegionDir {
    fn default() -> Self {
        RegionDir::system()
    }
}
