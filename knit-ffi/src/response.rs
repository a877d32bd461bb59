//! `knit_response`: the result of a successful call, owned by the caller until freed.

use knit_rt::Response;

use crate::args::{out, store};
use crate::handle::{self, Object};
use crate::status::{guard, FfiResult, KnitStatus};

/// The result of a successful call (opaque).
pub struct KnitResponse {
    _private: [u8; 0],
}

/// The object behind a `knit_response` handle.
pub(crate) struct ResponseObject {
    content_type: u32,
    bytes: Vec<u8>,
}

impl Object for ResponseObject {
    type Opaque = KnitResponse;
    const KIND: &'static str = "knit_response";
}

/// Registers `response` and stores its handle in `*dst` (when `dst` is not NULL; a NULL `dst`
/// discards the response).
///
/// # Safety
/// `dst` is NULL or valid for a write of a handle.
pub(crate) unsafe fn publish(response: Response, dst: *mut *mut KnitResponse) -> FfiResult {
    if dst.is_null() {
        return Ok(());
    }
    let content_type = response.content_type();
    let h = register(content_type, response.into_bytes())?;
    // SAFETY: non-NULL; writable by the caller's contract.
    unsafe { store(dst, h) };
    Ok(())
}

/// Registers `bytes` of `content_type` as a new response handle (a channel message).
pub(crate) fn register(content_type: u32, bytes: Vec<u8>) -> FfiResult<*mut KnitResponse> {
    handle::register(ResponseObject {
        content_type,
        bytes,
    })
}

/// Clears an output handle before a call that may fail, so a failure leaves NULL there.
///
/// # Safety
/// `dst` is NULL or valid for a write of a handle.
pub(crate) unsafe fn clear(dst: *mut *mut KnitResponse) {
    if !dst.is_null() {
        // SAFETY: non-NULL; writable by the caller's contract.
        unsafe { store(dst, std::ptr::null_mut()) };
    }
}

/// Gives the result: `*data` its first byte (NULL when empty), `*len` its length,
/// `*content_type` its content type. Any output pointer may be NULL when not wanted.
///
/// Ownership: the bytes belong to the response; they stay valid, unchanged, until
/// `knit_response_free`.
/// Thread safety: safe from any thread, concurrently.
///
/// # Safety
/// Each non-NULL output pointer is valid for a write of its type.
#[no_mangle]
pub unsafe extern "C" fn knit_response_get(
    response: *const KnitResponse,
    data: *mut *const u8,
    len: *mut usize,
    content_type: *mut u32,
) -> KnitStatus {
    guard("knit_response_get", || {
        let r = handle::get::<ResponseObject>(response)?;
        let ptr = if r.bytes.is_empty() {
            std::ptr::null()
        } else {
            r.bytes.as_ptr()
        };
        // The bytes live in the registry's `Arc` until the handle is freed; the local `Arc`
        // dropping here does not free them.
        if let Ok(p) = out(data, "data") {
            // SAFETY: non-NULL; writable by the caller's contract.
            unsafe { store(p, ptr) };
        }
        if let Ok(p) = out(len, "len") {
            // SAFETY: as above.
            unsafe { store(p, r.bytes.len()) };
        }
        if let Ok(p) = out(content_type, "content_type") {
            // SAFETY: as above.
            unsafe { store(p, r.content_type) };
        }
        Ok(())
    })
}

/// Frees a response and its bytes.
///
/// Ownership: the handle and every pointer `knit_response_get` gave are invalid afterwards.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_response_free(response: *mut KnitResponse) -> KnitStatus {
    guard("knit_response_free", || {
        handle::remove::<ResponseObject>(response).map(drop)
    })
}
