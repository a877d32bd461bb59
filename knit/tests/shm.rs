//! Named and anonymous mappings: creation discipline (MAP-1, MAP-2, MAP-4), opening checks
//! (MAP-6, HDR-7), name validation and unlink (MAP-3).

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use knit::shm::MIN_OBJECT_LEN;
use knit::{unlink, Mapping, RegionDir, RegionName};
use knit_core::ErrorCode;

/// Unlinks a test's name even when an assertion fails first.
struct Unlink(RegionName);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

#[test]
fn named_region_is_exclusive_owner_only_and_zeroed() {
    let (mapping, name) = Mapping::create_named(8192).expect("create");
    let _guard = Unlink(name.clone());
    assert_eq!(mapping.name(), Some(&name));
    assert_eq!(mapping.len(), 8192);

    // MAP-1: mode exactly 0600, owned by us, a regular file of the requested size.
    let meta = std::fs::symlink_metadata(name.shm_path()).expect("stat /dev/shm entry");
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(meta.len(), 8192);

    // ftruncate zero-fills.
    let mem = mapping.as_shared();
    let mut bytes = vec![0xAAu8; 8192];
    mem.read(0, &mut bytes).expect("read");
    assert!(bytes.iter().all(|&b| b == 0));
}

#[test]
fn writes_through_one_mapping_are_seen_through_another() {
    let (creator, name) = Mapping::create_named(MIN_OBJECT_LEN * 4).expect("create");
    let _guard = Unlink(name.clone());
    let opened = Mapping::open_named(name.as_str()).expect("open");
    assert_eq!(opened.len(), creator.len());
    creator
        .as_shared()
        .write_u64(0x100, 0x1122_3344_5566_7788)
        .expect("write");
    assert_eq!(
        opened.as_shared().read_u64(0x100).expect("read"),
        0x1122_3344_5566_7788
    );
    let word = opened.as_shared().atomic_u32(0x10).expect("atomic");
    word.store(7, std::sync::atomic::Ordering::Release);
    assert_eq!(creator.as_shared().read_u32(0x10).expect("read"), 7);
}

#[test]
fn open_refuses_invalid_names_before_any_os_call() {
    for bad in [
        "../etc/passwd",
        "/knit-0123456789abcdef0123456789abcdef",
        "knit-xyz",
        "knit-0123456789ABCDEF0123456789ABCDEF",
    ] {
        let err = Mapping::open_named(bad).expect_err(bad);
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{bad}: {err}");
    }
}

#[test]
fn open_of_a_missing_name_is_an_os_error_naming_the_path() {
    let name = RegionName::random().expect("name");
    let err = Mapping::open_named(name.as_str()).expect_err("no such object");
    assert_eq!(err.code(), ErrorCode::OsError);
    assert!(err.to_string().contains(name.as_str()), "{err}");
    assert_eq!(
        err.io().map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
}

#[test]
fn objects_shorter_than_the_header_are_refused() {
    // Plant a short object under a valid name, as a hostile or crashed creator could.
    let name = RegionName::random().expect("name");
    let _guard = Unlink(name.clone());
    std::fs::write(name.shm_path(), vec![0u8; MIN_OBJECT_LEN - 1]).expect("plant short object");
    let err = Mapping::open_named(name.as_str()).expect_err("too short");
    assert_eq!(err.code(), ErrorCode::RegionTooSmall, "{err}");
    assert_eq!(
        err.core().map(|e| e.found),
        Some((MIN_OBJECT_LEN - 1) as u64)
    );
}

#[test]
fn symlinks_under_a_region_name_are_not_followed() {
    let (_target, target_name) = Mapping::create_named(MIN_OBJECT_LEN).expect("create");
    let _target_guard = Unlink(target_name.clone());
    let link = RegionName::random().expect("name");
    let _link_guard = Unlink(link.clone());
    std::os::unix::fs::symlink(target_name.shm_path(), link.shm_path()).expect("plant symlink");
    let err = Mapping::open_named(link.as_str()).expect_err("symlink");
    assert_eq!(err.code(), ErrorCode::OsError, "{err}");
    // And the directory listing does not offer it as a region.
    let names = RegionDir::system().names().expect("list");
    assert!(!names.contains(&link));
    assert!(names.contains(&target_name));
}

#[test]
fn create_refuses_lengths_below_the_header() {
    let err = Mapping::create_named(MIN_OBJECT_LEN - 8).expect_err("short");
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    let err = Mapping::create_memfd(0).expect_err("empty");
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
}

#[test]
fn unlink_removes_the_name_but_not_the_mapping() {
    let (mapping, name) = Mapping::create_named(MIN_OBJECT_LEN).expect("create");
    mapping.as_shared().write_u32(0, 0xfeed).expect("write");
    unlink(&name).expect("unlink");
    assert!(!name.shm_path().exists());
    let err = Mapping::open_named(name.as_str()).expect_err("gone");
    assert_eq!(err.code(), ErrorCode::OsError);
    assert_eq!(mapping.as_shared().read_u32(0).expect("read"), 0xfeed);
    // A second unlink reports the missing name rather than succeeding silently.
    assert_eq!(unlink(&name).expect_err("twice").code(), ErrorCode::OsError);
}

#[test]
fn region_dir_lists_only_valid_region_files() {
    let dir = std::env::temp_dir().join(format!("knit-dir-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let a = RegionName::from_random_bytes([1; 16]);
    let b = RegionName::from_random_bytes([2; 16]);
    std::fs::write(dir.join(b.as_str()), b"x").expect("write b");
    std::fs::write(dir.join(a.as_str()), b"x").expect("write a");
    std::fs::write(dir.join("knit-not-a-region"), b"x").expect("write other");
    std::fs::write(dir.join("other"), b"x").expect("write other");
    std::fs::create_dir(dir.join(RegionName::from_random_bytes([3; 16]).as_str()))
        .expect("mkdir region-like");
    let names = RegionDir::at(&dir).names().expect("list");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert_eq!(names, vec![a, b]);
}

#[test]
fn memfd_regions_are_sealed_and_shareable_by_descriptor() {
    let mapping = Mapping::create_memfd(16384).expect("memfd");
    assert_eq!(mapping.name(), None);
    assert_eq!(mapping.len(), 16384);
    // MAP-7: the size is sealed.
    let seals = rustix::fs::fcntl_get_seals(mapping.fd()).expect("get seals");
    assert!(seals.contains(rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW));
    assert!(
        rustix::fs::ftruncate(mapping.fd(), 4096).is_err(),
        "shrinking must be refused"
    );

    // The inheritable duplicate is not close-on-exec; the original is.
    let dup = mapping.inheritable_fd().expect("dup");
    assert!(!rustix::io::fcntl_getfd(&dup)
        .expect("getfd")
        .contains(rustix::io::FdFlags::CLOEXEC));
    assert!(rustix::io::fcntl_getfd(mapping.fd())
        .expect("getfd")
        .contains(rustix::io::FdFlags::CLOEXEC));

    // Mapping the received descriptor sees the same bytes.
    let other = Mapping::from_fd(dup).expect("from fd");
    assert_eq!(other.len(), 16384);
    mapping.as_shared().write_u64(4096, 42).expect("write");
    assert_eq!(other.as_shared().read_u64(4096).expect("read"), 42);
}

#[test]
fn truncate_keeps_exactly_the_requested_length() {
    let (mapping, name) = Mapping::create_named(5 * 4096).expect("create");
    let _guard = Unlink(name.clone());
    mapping.as_shared().write_u32(0x200, 9).expect("write");
    let mapping = mapping.truncate(4096 + 64).expect("truncate");
    assert_eq!(mapping.len(), 4096 + 64);
    assert_eq!(mapping.as_shared().len(), 4096 + 64);
    assert_eq!(mapping.as_shared().read_u32(0x200).expect("read"), 9);
    assert_eq!(
        mapping
            .as_shared()
            .read_u32(4096 + 64)
            .expect_err("past the end")
            .code,
        ErrorCode::BadLayout
    );
    // The released pages are really unmapped: the kernel's map of this range ends at the
    // page boundary after the kept length.
    let start = mapping.as_shared().as_ptr() as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let page = rustix::param::page_size();
    let range = maps
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.split_once('-'))
        .filter_map(|(a, b)| {
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .find(|&(a, _)| a == start)
        .expect("mapping listed in /proc/self/maps");
    assert_eq!(range.1 - range.0, (4096 + 64_usize).div_ceil(page) * page);
    let err = mapping.truncate(5 * 4096).expect_err("cannot grow");
    assert_eq!(err.code(), ErrorCode::RegionTooSmall);
}
