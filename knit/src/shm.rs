//! [`Mapping`]: one shared mapping of a region's object, named (POSIX shared memory) or
//! anonymous (memfd), with the creation, permission and unlink discipline of spec/11-mapping.md.

use std::ffi::c_void;
use std::ptr::NonNull;

use knit_core::{ErrorCode, SharedMem};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, SealFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};
use rustix::shm;

use crate::error::{Error, Result};
use crate::name::RegionName;

/// The fewest bytes an object must have to be opened: the header and the control block
/// (0x140), which an attacher reads before it knows `region_len` (HDR-7, INIT-2).
pub const MIN_OBJECT_LEN: usize = 0x140;

/// How many fresh random names creation tries before giving up on `EEXIST`. With 128-bit
/// names a second attempt already means something else is squatting on names (MAP-2).
const CREATE_ATTEMPTS: usize = 8;

/// The name memfd objects carry in `/proc/<pid>/fd` listings (informative only).
const MEMFD_NAME: &str = "knit-region";

/// Owner-only permissions of every region object (MAP-1).
const OWNER_ONLY: Mode = Mode::RUSR.union(Mode::WUSR);

/// A shared, read-write mapping of a whole region object, unmapped on drop.
///
/// The mapping is never exposed as a Rust slice: all access goes through
/// [`Mapping::as_shared`], which treats the bytes as peer-written (SEC-1).
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
    name: Option<RegionName>,
}

// SAFETY: `Mapping` owns its pages and its descriptor; the pointer is not tied to a thread,
// and every access to the pages goes through `SharedMem`, which is itself `Send` and `Sync`
// (atomics and byte copies only).
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` only hands out `SharedMem` views and borrowed descriptors, both of which
// may be used from many threads at once.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Creates a new named region object of `len` bytes (zero-filled) and maps it.
    ///
    /// MAP-1: `O_CREAT | O_EXCL | O_RDWR` with mode 0600 (re-applied with `fchmod`, since the
    /// process umask could otherwise change it). MAP-2: the name is fresh CSPRNG output; on
    /// `EEXIST` a new name is drawn. On any failure after creation the name is unlinked again.
    pub fn create_named(len: usize) -> Result<(Mapping, RegionName)> {
        check_create_len(len)?;
        for _ in 0..CREATE_ATTEMPTS {
            let name = RegionName::random()?;
            let flags = shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR;
            let fd = match shm::open(name.as_str(), flags, OWNER_ONLY) {
                Ok(fd) => fd,
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(Error::os("shm_open(O_CREAT|O_EXCL)", shm_subject(&name), e)),
            };
            return match Self::size_and_map(fd, len, Some(name.clone())) {
                Ok(mapping) => Ok((mapping, name)),
                Err(e) => {
                    // The object is ours and unusable: remove its name so nothing leaks (MAP-3).
                    let _ = shm::unlink(name.as_str());
                    Err(e)
                }
            };
        }
        Err(Error::os(
            "shm_open(O_CREAT|O_EXCL)",
            "/dev/shm/knit-*",
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "every freshly drawn random name already existed",
            ),
        ))
    }

    /// Opens an existing named region object and maps all of it.
    ///
    /// The name is validated first (exactly `knit-[0-9a-f]{32}`, else `INVALID_ARGUMENT`), so
    /// it cannot name a path. The object is opened without following symbolic links, must be a
    /// regular file, and its size is checked with `fstat` before mapping (MAP-6): an object
    /// shorter than the header and control block is refused with `REGION_TOO_SMALL` (HDR-7).
    /// The caller validates the header and then keeps exactly `region_len` bytes mapped
    /// ([`Mapping::truncate`]).
    pub fn open_named(name: &str) -> Result<Mapping> {
        let name = RegionName::parse(name)?;
        // MAP-8: O_NOFOLLOW, a symbolic link planted under the name is refused, not followed. rustix
        // passes the extra open flag through to the open of `/dev/shm/<name>`.
        let flags =
            shm::OFlags::RDWR | shm::OFlags::from_bits_retain(rustix::fs::OFlags::NOFOLLOW.bits());
        let fd = shm::open(name.as_str(), flags, Mode::empty())
            .map_err(|e| Error::os("shm_open", shm_subject(&name), e))?;
        let subject = shm_subject(&name);
        let len = checked_object_len(&fd, &subject)?;
        let ptr = map_shared(&fd, len, &subject)?;
        Ok(Mapping {
            ptr,
            len,
            fd,
            name: Some(name),
        })
    }

    /// Creates an anonymous region object of `len` bytes (zero-filled, MAP-4) and maps it.
    ///
    /// The descriptor is close-on-exec; pass it to a child with
    /// [`Mapping::inheritable_fd`]. The object is sealed against shrinking and growing (MAP-7),
    /// so no participant can truncate it under another's mapping.
    pub fn create_memfd(len: usize) -> Result<Mapping> {
        check_create_len(len)?;
        let flags = rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING;
        let fd = rustix::fs::memfd_create(MEMFD_NAME, flags)
            .map_err(|e| Error::os("memfd_create", MEMFD_NAME, e))?;
        let mapping = Self::size_and_map(fd, len, None)?;
        // MAP-7: seal the size; F_SEAL_SEAL last so that no peer can add a write seal later.
        rustix::fs::fcntl_add_seals(
            &mapping.fd,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )
        .map_err(|e| Error::os("fcntl(F_ADD_SEALS)", MEMFD_NAME, e))?;
        Ok(mapping)
    }

    /// Maps all of a region object received as a descriptor (the child side of MAP-4).
    ///
    /// As for [`Mapping::open_named`]: the object must be a regular file (memfd objects are)
    /// of at least [`MIN_OBJECT_LEN`] bytes, checked with `fstat` before mapping (MAP-6).
    pub fn from_fd(fd: OwnedFd) -> Result<Mapping> {
        let subject = "inherited region descriptor";
        let len = checked_object_len(&fd, subject)?;
        let ptr = map_shared(&fd, len, subject)?;
        Ok(Mapping {
            ptr,
            len,
            fd,
            name: None,
        })
    }

    /// Sets the size of a freshly created object and maps it.
    fn size_and_map(fd: OwnedFd, len: usize, name: Option<RegionName>) -> Result<Mapping> {
        let subject = name
            .as_ref()
            .map_or_else(|| MEMFD_NAME.to_owned(), shm_subject);
        // MAP-1: exactly 0600, whatever the umask removed at creation.
        rustix::fs::fchmod(&fd, OWNER_ONLY).map_err(|e| Error::os("fchmod(0600)", &subject, e))?;
        rustix::fs::ftruncate(&fd, len as u64).map_err(|e| Error::os("ftruncate", &subject, e))?;
        let ptr = map_shared(&fd, len, &subject)?;
        Ok(Mapping { ptr, len, fd, name })
    }

    /// Keeps only the first `len` bytes mapped (MAP-6: exactly `region_len` after the header
    /// was validated). `len` must be at least [`MIN_OBJECT_LEN`] and at most the current length.
    pub fn truncate(mut self, len: usize) -> Result<Mapping> {
        if len < MIN_OBJECT_LEN || len > self.len {
            return Err(Error::Protocol {
                error: knit_core::Error::value(
                    ErrorCode::RegionTooSmall,
                    "mapping length to keep",
                    len as u64,
                    self.len as u64,
                ),
                context: self.subject(),
            });
        }
        let page = rustix::param::page_size();
        // The first page boundary at or after `len`; the pages from there on are released.
        let keep = len.div_ceil(page).saturating_mul(page);
        if keep < self.len {
            let tail_len = self.len - keep;
            // SAFETY: `keep < self.len`, so `ptr + keep .. ptr + self.len` lies inside this
            // mapping and is page-aligned at its start (mmap returns page-aligned addresses and
            // `keep` is a multiple of the page size). No `SharedMem` can outlive this call's
            // exclusive `self`, so no view refers to the released pages.
            unsafe {
                rustix::mm::munmap(self.ptr.as_ptr().add(keep).cast::<c_void>(), tail_len)
                    .map_err(|e| Error::os("munmap", self.subject(), e))?;
            }
        }
        self.len = len;
        Ok(self)
    }

    /// The bytes of the mapping as a peer-written shared view.
    pub fn as_shared(&self) -> SharedMem<'_> {
        // SAFETY: `ptr..ptr + len` is one live MAP_SHARED read-write mapping that `self` owns
        // and unmaps only on drop (or shrinks in `truncate`, which takes `self` by value), so it
        // is valid for the borrow of `self`. This crate never creates `&[u8]` / `&mut [u8]` over
        // it. mmap returns page-aligned addresses, so `ptr` is 8-aligned.
        unsafe { SharedMem::new(self.ptr, self.len) }
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the mapping has no bytes (never, for a mapping built by this type).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The region name, for a named mapping.
    pub fn name(&self) -> Option<&RegionName> {
        self.name.as_ref()
    }

    /// The descriptor of the object (close-on-exec).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A duplicate of the object's descriptor without close-on-exec, to be inherited by a child
    /// process (MAP-4). Drop it once the child is spawned. Another thread spawning a child at
    /// the same moment may inherit it too; that grants access to this region only.
    pub fn inheritable_fd(&self) -> Result<OwnedFd> {
        rustix::io::dup(&self.fd).map_err(|e| Error::os("dup", self.subject(), e))
    }

    fn subject(&self) -> String {
        self.name
            .as_ref()
            .map_or_else(|| MEMFD_NAME.to_owned(), shm_subject)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is the mapping this value owns; `as_shared` views borrow
        // `self`, so none outlives this drop. An error (impossible for a valid range) is ignored:
        // at worst the pages stay mapped until exit.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

/// Removes a region's name (MAP-3). Existing mappings stay valid; new opens fail.
pub fn unlink(name: &RegionName) -> Result<()> {
    shm::unlink(name.as_str()).map_err(|e| Error::os("shm_unlink", shm_subject(name), e))
}

/// The path shown in messages about a named object.
fn shm_subject(name: &RegionName) -> String {
    name.shm_path().display().to_string()
}

/// Creation needs room for at least the header and control block.
fn check_create_len(len: usize) -> Result<()> {
    if len < MIN_OBJECT_LEN {
        return Err(Error::Protocol {
            error: knit_core::Error::value(
                ErrorCode::InvalidArgument,
                "region length to create",
                len as u64,
                MIN_OBJECT_LEN as u64,
            ),
            context: String::new(),
        });
    }
    Ok(())
}

/// `fstat`s an object before it is mapped (MAP-6): it must be a regular file (MAP-8) of at least
/// [`MIN_OBJECT_LEN`] bytes whose size fits the address space.
fn checked_object_len(fd: &OwnedFd, subject: &str) -> Result<usize> {
    let st = rustix::fs::fstat(fd).map_err(|e| Error::os("fstat", subject, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Error::protocol(
            ErrorCode::InvalidArgument,
            "region object is not a regular file",
            subject,
        ));
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size < MIN_OBJECT_LEN as u64 {
        // HDR-7: nothing past the object's end is ever touched.
        return Err(Error::Protocol {
            error: knit_core::Error::value(
                ErrorCode::RegionTooSmall,
                "object size",
                size,
                MIN_OBJECT_LEN as u64,
            ),
            context: subject.to_owned(),
        });
    }
    usize::try_from(size).map_err(|_| Error::Protocol {
        error: knit_core::Error::value(
            ErrorCode::BadLayout,
            "object size",
            size,
            usize::MAX as u64,
        ),
        context: subject.to_owned(),
    })
}

/// Maps `len` bytes of `fd` shared and read-write at an address the kernel chooses.
fn map_shared(fd: &OwnedFd, len: usize, subject: &str) -> Result<NonNull<u8>> {
    // SAFETY: a null address hint with no MAP_FIXED makes the kernel pick an unused range, so
    // no existing memory of this process is replaced. `len` is non-zero (at least
    // MIN_OBJECT_LEN, checked by every caller) and at most the object's size.
    let ptr = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    }
    .map_err(|e| Error::os("mmap", subject, e))?;
    NonNull::new(ptr.cast::<u8>()).ok_or_else(|| {
        Error::os(
            "mmap",
            subject,
            std::io::Error::other("returned a null mapping"),
        )
    })
}
