//! The shared mapping of the raw shared-memory baselines: a named region object created by
//! the host with Knit's own mapping code (0600, exclusive, random name) and opened by the peer.

use knit::{Mapping, RegionName};
use knit_core::SharedMem;

use crate::Result;

/// A mapping shared with the peer. The host's copy removes the name on drop (or earlier,
/// once the peer has opened it).
#[derive(Debug)]
pub struct SharedArea {
    mapping: Mapping,
    name: String,
    owned_name: Option<RegionName>,
}

impl SharedArea {
    /// Creates a zero-filled area of `len` bytes (the host).
    pub fn create(len: usize) -> Result<SharedArea> {
        let (mapping, name) = Mapping::create_named(len)?;
        Ok(SharedArea {
            mapping,
            name: name.as_str().to_owned(),
            owned_name: Some(name),
        })
    }

    /// Opens the area the host named `name` (the peer).
    pub fn open(name: &str) -> Result<SharedArea> {
        Ok(SharedArea {
            mapping: Mapping::open_named(name)?,
            name: name.to_owned(),
            owned_name: None,
        })
    }

    /// The name to pass to the peer.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shared bytes.
    pub fn mem(&self) -> SharedMem<'_> {
        self.mapping.as_shared()
    }

    /// Removes the name once the peer has opened it; the mapping stays.
    pub fn unlink(&mut self) -> Result<()> {
        match self.owned_name.take() {
            Some(name) => Ok(knit::unlink(&name)?),
            None => Ok(()),
        }
    }
}

impl Drop for SharedArea {
    fn drop(&mut self) {
        let _ = self.unlink();
    }
}
