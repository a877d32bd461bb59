//! The typed-array payload (content type 4, spec/09-registry.md §9.2, CT-2, CT-3): a header
//! naming the element type and the shape, then the elements in C order.
//!
//! Decoding works on a private copy or on borrowed payload bytes alike: it reads each header
//! byte once and returns the element byte range, so an in-place payload can be viewed without
//! copying the elements.

use core::ops::Range;

use crate::error::{Error, ErrorCode, Result};

/// The content type value of a typed array (spec/09 §9.2).
pub const CONTENT_TYPE_TYPED_ARRAY: u32 = 4;
/// Most dimensions a typed array may have (CT-2).
pub const MAX_NDIM: usize = 32;
/// Bytes of the fixed part of the header: `dtype`, `ndim`, reserved.
pub const FIXED_HEADER_LEN: usize = 8;

/// Element type of a typed array (spec/09 §9.2). Elements are little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Dtype {
    /// Unsigned 8-bit integer.
    U8 = 1,
    /// Signed 8-bit integer.
    I8 = 2,
    /// Unsigned 16-bit integer.
    U16 = 3,
    /// Signed 16-bit integer.
    I16 = 4,
    /// Unsigned 32-bit integer.
    U32 = 5,
    /// Signed 32-bit integer.
    I32 = 6,
    /// Unsigned 64-bit integer.
    U64 = 7,
    /// Signed 64-bit integer.
    I64 = 8,
    /// IEEE 754 binary16.
    F16 = 9,
    /// IEEE 754 binary32.
    F32 = 10,
    /// IEEE 754 binary64.
    F64 = 11,
    /// bfloat16.
    Bf16 = 12,
    /// Boolean, one byte, 0 or 1.
    Bool = 13,
}

impl Dtype {
    /// Every dtype, in registry order.
    pub const ALL: [Dtype; 13] = [
        Dtype::U8,
        Dtype::I8,
        Dtype::U16,
        Dtype::I16,
        Dtype::U32,
        Dtype::I32,
        Dtype::U64,
        Dtype::I64,
        Dtype::F16,
        Dtype::F32,
        Dtype::F64,
        Dtype::Bf16,
        Dtype::Bool,
    ];

    /// The dtype with registry value `value`, if it is known.
    pub fn from_u16(value: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| *d as u16 == value)
    }

    /// Bytes per element.
    pub fn itemsize(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 | Dtype::Bool => 1,
            Dtype::U16 | Dtype::I16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }
}

/// The shape of a typed array: up to [`MAX_NDIM`] extents, held without an allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    dims: [u64; MAX_NDIM],
    ndim: usize,
}

impl Shape {
    /// A shape of the given extents; `INVALID_ARGUMENT` beyond [`MAX_NDIM`] dimensions.
    pub fn new(extents: &[u64]) -> Result<Self> {
        let mut dims = [0u64; MAX_NDIM];
        dims.get_mut(..extents.len())
            .ok_or(Error::value(
                ErrorCode::InvalidArgument,
                "typed_array.ndim",
                extents.len() as u64,
                MAX_NDIM as u64,
            ))?
            .copy_from_slice(extents);
        Ok(Shape {
            dims,
            ndim: extents.len(),
        })
    }

    /// The extents, outermost first (C order).
    pub fn dims(&self) -> &[u64] {
        &self.dims[..self.ndim]
    }

    /// Number of elements, or `None` when the product overflows (CT-2). A 0-dimensional
    /// array has one element.
    pub fn element_count(&self) -> Option<u64> {
        self.dims()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }
}

/// Length of a header with `ndim` dimensions.
pub fn header_len(ndim: usize) -> usize {
    FIXED_HEADER_LEN + 8 * ndim.min(MAX_NDIM)
}

/// Element bytes of an array: `product(shape) × itemsize`, or `None` on overflow (CT-2).
pub fn element_bytes(dtype: Dtype, shape: &Shape) -> Option<u64> {
    shape.element_count()?.checked_mul(dtype.itemsize() as u64)
}

/// Writes the header for `dtype` and `shape` at the start of `out`, returning its length.
/// `INVALID_ARGUMENT` when `out` is too short.
pub fn encode_header(dtype: Dtype, shape: &Shape, out: &mut [u8]) -> Result<usize> {
    let len = header_len(shape.ndim);
    let out = out.get_mut(..len).ok_or(Error::value(
        ErrorCode::InvalidArgument,
        "typed_array header buffer",
        0,
        len as u64,
    ))?;
    out[0..2].copy_from_slice(&(dtype as u16).to_le_bytes());
    // ndim is at most 32 (Shape::new), so it fits in u16.
    out[2..4].copy_from_slice(&(shape.ndim as u16).to_le_bytes());
    out[4..8].fill(0);
    for (chunk, d) in out[FIXED_HEADER_LEN..]
        .chunks_exact_mut(8)
        .zip(shape.dims())
    {
        chunk.copy_from_slice(&d.to_le_bytes());
    }
    Ok(len)
}

/// A whole typed-array payload (header and elements) in a new buffer; `INVALID_ARGUMENT` when
/// `elements` is not exactly `product(shape) × itemsize` bytes.
#[cfg(feature = "alloc")]
pub fn encode(dtype: Dtype, shape: &Shape, elements: &[u8]) -> Result<alloc::vec::Vec<u8>> {
    let want = element_bytes(dtype, shape).ok_or(Error::new(
        ErrorCode::InvalidArgument,
        "typed_array shape product overflows",
    ))?;
    if want != elements.len() as u64 {
        return Err(Error::value(
            ErrorCode::InvalidArgument,
            "typed_array elements",
            elements.len() as u64,
            want,
        ));
    }
    let mut out = alloc::vec![0u8; header_len(shape.ndim)];
    encode_header(dtype, shape, &mut out)?;
    out.extend_from_slice(elements);
    Ok(out)
}

/// A decoded typed-array header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedArray {
    /// Element type.
    pub dtype: Dtype,
    /// Extents in C order.
    pub shape: Shape,
    /// Where the elements lie in the payload.
    pub elements: Range<usize>,
}

fn invalid(what: &'static str, found: u64, expected: u64) -> Error {
    // CT-3: a malformed typed array is the endpoint's argument error, not a protocol violation.
    Error::value(ErrorCode::InvalidArgument, what, found, expected)
}

/// Decodes and checks a typed-array payload (CT-2): known `dtype`, `ndim ≤ 32`, no overflow
/// in the shape product, and exactly `product(shape) × itemsize` element bytes. Each header
/// byte is read once. A failure is `INVALID_ARGUMENT` (CT-3).
pub fn decode(payload: &[u8]) -> Result<TypedArray> {
    let mut fixed = [0u8; FIXED_HEADER_LEN];
    fixed.copy_from_slice(payload.get(..FIXED_HEADER_LEN).ok_or(invalid(
        "typed_array header",
        payload.len() as u64,
        FIXED_HEADER_LEN as u64,
    ))?);
    let raw_dtype = u16::from_le_bytes([fixed[0], fixed[1]]);
    let dtype =
        Dtype::from_u16(raw_dtype).ok_or(invalid("typed_array.dtype", u64::from(raw_dtype), 13))?;
    let ndim = usize::from(u16::from_le_bytes([fixed[2], fixed[3]]));
    if ndim > MAX_NDIM {
        return Err(invalid("typed_array.ndim", ndim as u64, MAX_NDIM as u64));
    }
    let head = header_len(ndim);
    let shape_bytes = payload.get(FIXED_HEADER_LEN..head).ok_or(invalid(
        "typed_array shape",
        payload.len() as u64,
        head as u64,
    ))?;
    let mut dims = [0u64; MAX_NDIM];
    for (d, chunk) in dims.iter_mut().zip(shape_bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *d = u64::from_le_bytes(b);
    }
    let shape = Shape { dims, ndim };
    let want = element_bytes(dtype, &shape).ok_or(invalid(
        "typed_array shape product overflows",
        0,
        u64::MAX,
    ))?;
    let have = (payload.len() - head) as u64;
    if want != have {
        return Err(invalid("typed_array element bytes", have, want));
    }
    Ok(TypedArray {
        dtype,
        shape,
        elements: head..payload.len(),
    })
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    #[test]
    fn itemsizes_and_values_match_the_registry() {
        let sizes = [1, 1, 2, 2, 4, 4, 8, 8, 2, 4, 8, 2, 1];
        for (i, d) in Dtype::ALL.iter().enumerate() {
            assert_eq!(*d as u16, i as u16 + 1);
            assert_eq!(d.itemsize(), sizes[i]);
            assert_eq!(Dtype::from_u16(i as u16 + 1), Some(*d));
        }
        assert_eq!(Dtype::from_u16(0), None);
        assert_eq!(Dtype::from_u16(14), None);
    }

    #[test]
    fn round_trips_a_2x3_f32_array_byte_exact() {
        let shape = Shape::new(&[2, 3]).unwrap();
        let elements: std::vec::Vec<u8> = (0..24).collect();
        let bytes = encode(Dtype::F32, &shape, &elements).unwrap();
        assert_eq!(&bytes[..8], &[10, 0, 2, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &2u64.to_le_bytes());
        assert_eq!(&bytes[16..24], &3u64.to_le_bytes());
        let arr = decode(&bytes).unwrap();
        assert_eq!(arr.dtype, Dtype::F32);
        assert_eq!(arr.shape.dims(), &[2, 3]);
        assert_eq!(&bytes[arr.elements], &elements[..]);
    }

    #[test]
    fn scalar_has_one_element_and_zero_extent_has_none() {
        let scalar = encode(Dtype::F64, &Shape::new(&[]).unwrap(), &[0; 8]).unwrap();
        assert_eq!(decode(&scalar).unwrap().elements, 8..16);
        let empty = encode(Dtype::I64, &Shape::new(&[4, 0]).unwrap(), &[]).unwrap();
        assert_eq!(decode(&empty).unwrap().elements, 24..24);
    }

    #[test]
    fn rejects_ct2_violations_as_invalid_argument() {
        let good = encode(Dtype::U16, &Shape::new(&[3]).unwrap(), &[0; 6]).unwrap();
        let mut bad_dtype = good.clone();
        bad_dtype[0] = 14;
        let mut big_ndim = good.clone();
        big_ndim[2] = 33;
        let mut overflow = encode(Dtype::U8, &Shape::new(&[1, 1]).unwrap(), &[0]).unwrap();
        overflow[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        overflow[16..24].copy_from_slice(&2u64.to_le_bytes());
        let mut itemsize_overflow = good.clone();
        itemsize_overflow[8..16].copy_from_slice(&(u64::MAX / 2 + 1).to_le_bytes());
        let short_elements = &good[..good.len() - 1];
        let mut long_elements = good.clone();
        long_elements.push(0);
        let truncated_shape = &good[..12];
        for (what, bytes) in [
            ("dtype", &bad_dtype[..]),
            ("ndim", &big_ndim[..]),
            ("product overflow", &overflow[..]),
            ("itemsize overflow", &itemsize_overflow[..]),
            ("short elements", short_elements),
            ("long elements", &long_elements[..]),
            ("truncated shape", truncated_shape),
            ("truncated header", &good[..7]),
        ] {
            assert_eq!(
                decode(bytes).unwrap_err().code,
                ErrorCode::InvalidArgument,
                "{what}"
            );
        }
    }

    #[test]
    fn encode_checks_element_length_and_ndim() {
        let shape = Shape::new(&[2]).unwrap();
        assert_eq!(
            encode(Dtype::I32, &shape, &[0; 7]).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            Shape::new(&[1; 33]).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert!(Shape::new(&[1; 32]).is_ok());
    }
}
