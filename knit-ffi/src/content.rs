//! Content types of the registry (spec/09 §9.2): tags the transport never interprets (CT-1).

/// Content type: opaque bytes.
pub const KNIT_CONTENT_BYTES: u32 = 0;
/// Content type: UTF-8 text.
pub const KNIT_CONTENT_UTF8: u32 = 1;
/// Content type: JSON text.
pub const KNIT_CONTENT_JSON: u32 = 2;
/// Content type: CBOR.
pub const KNIT_CONTENT_CBOR: u32 = 3;
/// Content type: a typed numeric array (dtype, shape, elements; spec/09 §9.2).
pub const KNIT_CONTENT_TYPED_ARRAY: u32 = 4;
/// Content type: `MessagePack`.
pub const KNIT_CONTENT_MSGPACK: u32 = 5;
/// Content types from this value up are free for applications.
pub const KNIT_CONTENT_APPLICATION: u32 = 0x8000_0000;

#[cfg(test)]
mod tests {
    #[test]
    fn content_types_match_the_registry() {
        assert_eq!(super::KNIT_CONTENT_BYTES, knit_rt::call::CONTENT_BYTES);
        assert_eq!(super::KNIT_CONTENT_UTF8, knit_rt::call::CONTENT_UTF8);
        assert_eq!(super::KNIT_CONTENT_JSON, knit_rt::call::CONTENT_JSON);
        assert_eq!(super::KNIT_CONTENT_CBOR, knit_rt::call::CONTENT_CBOR);
    }
}
