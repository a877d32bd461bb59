//! Gives libknit.so the soname `libknit.so.<major>`, so that programs linked against one major
//! version of the C ABI never load another (scripts/build-c installs the usual symlinks).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".to_owned());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libknit.so.{major}");
    }
}
