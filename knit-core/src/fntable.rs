//! The function table a worker publishes in its HELLO (spec/05-calls.md §5.3, FN-1, FN-2).
//!
//! Wire form (the HELLO payload): `function_count` u32, reserved u32, then per function
//! `id` u32, `name_len` u16, `flags` u16 (reserved), the name bytes and zero padding to a
//! multiple of 8. Encoding into a caller's buffer works without an allocator; decoding into a
//! [`FunctionTable`] needs the `alloc` feature.

use crate::error::{Error, ErrorCode, Result};

/// Bytes before the first entry: `function_count` and a reserved word.
pub const TABLE_HEAD_LEN: usize = 8;
/// Bytes of an entry before its name: `id`, `name_len`, `flags`.
pub const ENTRY_HEAD_LEN: usize = 8;
/// Longest function name in bytes (FN-1).
pub const MAX_NAME_LEN: usize = 255;

/// Encoded size of one entry whose name is `name_len` bytes: head, name, zero padding to 8.
pub fn entry_len(name_len: usize) -> usize {
    // name_len is at most 255 for a valid entry; saturating keeps this total for any input.
    ENTRY_HEAD_LEN.saturating_add(name_len).saturating_add(7) & !7
}

/// The encoded size of a table of `functions`, or `INVALID_ARGUMENT` on overflow.
pub fn encoded_len(functions: &[(u32, &str)]) -> Result<usize> {
    functions.iter().try_fold(TABLE_HEAD_LEN, |acc, (_, name)| {
        acc.checked_add(entry_len(name.len())).ok_or(Error::new(
            ErrorCode::InvalidArgument,
            "function table size",
        ))
    })
}

/// Checks one name against FN-1's length bound; the caller checks uniqueness.
fn check_name_len(len: usize, code: ErrorCode) -> Result<()> {
    if len == 0 || len > MAX_NAME_LEN {
        return Err(Error::value(
            code,
            "function.name_len",
            len as u64,
            MAX_NAME_LEN as u64,
        ));
    }
    Ok(())
}

/// Encodes `functions` (id, name) into `out`, returning the bytes written.
///
/// The caller's table must satisfy FN-1 (names 1 to 255 bytes, names and ids unique);
/// a name of bad length is `INVALID_ARGUMENT` here, and [`FunctionTable::new`] also checks
/// uniqueness. `out` shorter than [`encoded_len`] is `INVALID_ARGUMENT`.
pub fn encode_into(functions: &[(u32, &str)], out: &mut [u8]) -> Result<usize> {
    let total = encoded_len(functions)?;
    let count = u32::try_from(functions.len())
        .map_err(|_| Error::new(ErrorCode::InvalidArgument, "function_count"))?;
    let out = out.get_mut(..total).ok_or(Error::value(
        ErrorCode::InvalidArgument,
        "function table buffer",
        0,
        total as u64,
    ))?;
    out.fill(0);
    let (head, mut rest) = out.split_at_mut(TABLE_HEAD_LEN);
    head[0..4].copy_from_slice(&count.to_le_bytes());
    for (id, name) in functions {
        check_name_len(name.len(), ErrorCode::InvalidArgument)?;
        let (entry, tail) = rest.split_at_mut(entry_len(name.len()));
        entry[0..4].copy_from_slice(&id.to_le_bytes());
        // The name length fits in u16: it was checked to be at most 255 above.
        entry[4..6].copy_from_slice(&(name.len() as u16).to_le_bytes());
        entry[ENTRY_HEAD_LEN..ENTRY_HEAD_LEN + name.len()].copy_from_slice(name.as_bytes());
        rest = tail;
    }
    Ok(total)
}

/// One entry as read from a private copy of a table, borrowing its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'b> {
    /// Function id.
    pub id: u32,
    /// Function name, validated UTF-8 of 1 to 255 bytes.
    pub name: &'b str,
}

/// Iterates the entries of a private copy of a table, validating each entry's framing and
/// name (FN-1) but not uniqueness. Stops at the first error, which it yields once.
pub struct Entries<'b> {
    rest: &'b [u8],
    remaining: u32,
    failed: bool,
}

fn bad(what: &'static str, found: u64, expected: u64) -> Error {
    Error::value(ErrorCode::BadRecord, what, found, expected)
}

/// Starts iterating the table in `payload`, a private copy of a HELLO payload.
pub fn entries(payload: &[u8]) -> Result<Entries<'_>> {
    let head = payload.get(..TABLE_HEAD_LEN).ok_or(bad(
        "function_table.len",
        payload.len() as u64,
        TABLE_HEAD_LEN as u64,
    ))?;
    let count = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    // Each entry takes at least 16 bytes, so a count the payload cannot hold is refused
    // before iterating (and before a decoder reserves anything for it).
    let room = (payload.len() - TABLE_HEAD_LEN) / entry_len(1);
    if count as usize > room {
        return Err(bad(
            "function_table.function_count",
            u64::from(count),
            room as u64,
        ));
    }
    Ok(Entries {
        rest: &payload[TABLE_HEAD_LEN..],
        remaining: count,
        failed: false,
    })
}

impl<'b> Entries<'b> {
    fn next_entry(&mut self) -> Result<EntryRef<'b>> {
        let rest = self.rest;
        let head = rest.get(..ENTRY_HEAD_LEN).ok_or(bad(
            "function_table.entry",
            rest.len() as u64,
            ENTRY_HEAD_LEN as u64,
        ))?;
        let id = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let name_len = usize::from(u16::from_le_bytes([head[4], head[5]]));
        // FN-1: names are 1 to 255 bytes.
        check_name_len(name_len, ErrorCode::BadRecord)?;
        let size = entry_len(name_len);
        let entry =
            rest.get(..size)
                .ok_or(bad("function_table.entry", rest.len() as u64, size as u64))?;
        let name_bytes = &entry[ENTRY_HEAD_LEN..ENTRY_HEAD_LEN + name_len];
        // FN-1: names are UTF-8.
        let name = core::str::from_utf8(name_bytes)
            .map_err(|e| bad("function.name utf8", e.valid_up_to() as u64, 0))?;
        self.rest = &rest[size..];
        Ok(EntryRef { id, name })
    }

    /// After the iterator is exhausted without error: FN-1 requires the entries to fill the
    /// payload exactly.
    pub fn finish(&self) -> Result<()> {
        if self.remaining != 0 || !self.rest.is_empty() {
            return Err(bad(
                "function_table trailing bytes",
                self.rest.len() as u64,
                0,
            ));
        }
        Ok(())
    }
}

impl<'b> Iterator for Entries<'b> {
    type Item = Result<EntryRef<'b>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let item = self.next_entry();
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(feature = "alloc")]
pub use owned::{Function, FunctionTable};

#[cfg(feature = "alloc")]
mod owned {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::{check_name_len, encode_into, encoded_len, entries, Error, ErrorCode, Result};

    /// One function of a table.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Function {
        /// Function id, unique in its table.
        pub id: u32,
        /// Function name, unique in its table.
        pub name: String,
    }

    /// A validated function table (FN-1): names and ids unique, names 1 to 255 bytes of UTF-8.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct FunctionTable {
        /// Sorted by name, for lookup by name (FN-2).
        by_name: Vec<Function>,
        /// The ids, sorted, for lookup by id.
        ids: Vec<u32>,
    }

    /// Sorts and checks FN-1 uniqueness of names and ids, reporting `code`.
    /// Sorting keeps this O(n log n) however large a hostile table is.
    fn sorted_unique(mut functions: Vec<Function>, code: ErrorCode) -> Result<FunctionTable> {
        let mut ids: Vec<u32> = functions.iter().map(|f| f.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::value(
                code,
                "function.id duplicate",
                u64::from(w[0]),
                0,
            ));
        }
        functions.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = functions.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::value(
                code,
                "function.name duplicate",
                u64::from(w[1].id),
                u64::from(w[0].id),
            ));
        }
        Ok(FunctionTable {
            by_name: functions,
            ids,
        })
    }

    impl FunctionTable {
        /// A table of `(id, name)` pairs; `INVALID_ARGUMENT` when it breaks FN-1.
        pub fn new<'n>(functions: impl IntoIterator<Item = (u32, &'n str)>) -> Result<Self> {
            let mut list = Vec::new();
            for (id, name) in functions {
                check_name_len(name.len(), ErrorCode::InvalidArgument)?;
                list.push(Function {
                    id,
                    name: String::from(name),
                });
            }
            sorted_unique(list, ErrorCode::InvalidArgument)
        }

        /// Decodes and validates a private copy of a HELLO payload (FN-1): every violation,
        /// including entries that do not exactly fill the payload, is `BAD_RECORD`.
        pub fn decode(payload: &[u8]) -> Result<Self> {
            let mut iter = entries(payload)?;
            let mut list = Vec::new();
            for entry in iter.by_ref() {
                let entry = entry?;
                list.push(Function {
                    id: entry.id,
                    name: String::from(entry.name),
                });
            }
            iter.finish()?;
            sorted_unique(list, ErrorCode::BadRecord)
        }

        /// The HELLO payload for this table, entries in name order.
        pub fn encode(&self) -> Vec<u8> {
            let pairs: Vec<(u32, &str)> = self
                .by_name
                .iter()
                .map(|f| (f.id, f.name.as_str()))
                .collect();
            // A validated table always encodes: names are 1..=255 bytes and the sizes fit
            // because the table already lives in memory.
            let len = encoded_len(&pairs).unwrap_or(0);
            let mut out = alloc::vec![0u8; len];
            let written = encode_into(&pairs, &mut out).unwrap_or(0);
            out.truncate(written);
            out
        }

        /// The id of the function called `name` (FN-2); `UNKNOWN_FUNCTION` when absent.
        pub fn lookup(&self, name: &str) -> Result<u32> {
            self.by_name
                .binary_search_by(|f| f.name.as_str().cmp(name))
                .ok()
                .and_then(|i| self.by_name.get(i))
                .map(|f| f.id)
                .ok_or(Error::new(ErrorCode::UnknownFunction, "function name"))
        }

        /// True when the table has function `id` (a worker's CALL-5 check).
        pub fn contains_id(&self, id: u32) -> bool {
            self.ids.binary_search(&id).is_ok()
        }

        /// The name of function `id`, if the table has it (a linear search, for messages).
        pub fn name_of(&self, id: u32) -> Option<&str> {
            self.by_name
                .iter()
                .find(|f| f.id == id)
                .map(|f| f.name.as_str())
        }

        /// The functions, in name order.
        pub fn functions(&self) -> &[Function] {
            &self.by_name
        }

        /// Number of functions.
        pub fn len(&self) -> usize {
            self.by_name.len()
        }

        /// True when the table has no function.
        pub fn is_empty(&self) -> bool {
            self.by_name.is_empty()
        }
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;

    fn raw_table(entries: &[(u32, &[u8])]) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::new();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        for (id, name) in entries {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0; 2]);
            out.extend_from_slice(name);
            while out.len() % 8 != 0 {
                out.push(0);
            }
        }
        out
    }

    #[test]
    fn encodes_byte_exact_and_round_trips() {
        let table = FunctionTable::new([(7, "add"), (3, "a_longer_name")]).unwrap();
        let bytes = table.encode();
        assert_eq!(bytes, raw_table(&[(3, b"a_longer_name"), (7, b"add")]));
        assert_eq!(bytes.len(), 8 + 24 + 16);
        let back = FunctionTable::decode(&bytes).unwrap();
        assert_eq!(back, table);
        assert_eq!(back.lookup("add"), Ok(7));
        assert_eq!(back.lookup("a_longer_name"), Ok(3));
        assert_eq!(
            back.lookup("nope").unwrap_err().code,
            ErrorCode::UnknownFunction
        );
        assert_eq!(back.name_of(3), Some("a_longer_name"));
        assert_eq!(back.name_of(4), None);
        assert!(back.contains_id(7) && back.contains_id(3) && !back.contains_id(4));
    }

    #[test]
    fn empty_table_is_eight_bytes() {
        let table = FunctionTable::new(std::iter::empty()).unwrap();
        assert_eq!(table.encode(), std::vec![0u8; 8]);
        assert!(FunctionTable::decode(&[0; 8]).unwrap().is_empty());
    }

    #[test]
    fn decode_rejects_fn1_violations_with_bad_record() {
        let cases: [(&str, std::vec::Vec<u8>); 6] = [
            ("duplicate name", raw_table(&[(1, b"f"), (2, b"f")])),
            ("duplicate id", raw_table(&[(1, b"f"), (1, b"g")])),
            ("empty name", raw_table(&[(1, b"")])),
            ("bad utf8", raw_table(&[(1, &[0xC3, 0x28])])),
            ("count too big", {
                let mut t = raw_table(&[(1, b"f")]);
                t[0] = 2;
                t
            }),
            ("trailing bytes", {
                let mut t = raw_table(&[(1, b"f")]);
                t.extend_from_slice(&[0; 8]);
                t
            }),
        ];
        for (what, bytes) in cases {
            assert_eq!(
                FunctionTable::decode(&bytes).unwrap_err().code,
                ErrorCode::BadRecord,
                "{what}"
            );
        }
        // A name_len running past the payload, and a payload shorter than the table head.
        let mut t = raw_table(&[(1, b"f")]);
        t[12] = 200;
        assert_eq!(
            FunctionTable::decode(&t).unwrap_err().code,
            ErrorCode::BadRecord
        );
        assert_eq!(
            FunctionTable::decode(&[1, 0, 0]).unwrap_err().code,
            ErrorCode::BadRecord
        );
        // A 256-byte name.
        let long = [b'x'; 256];
        assert_eq!(
            FunctionTable::decode(&raw_table(&[(1, &long)]))
                .unwrap_err()
                .code,
            ErrorCode::BadRecord
        );
    }

    #[test]
    fn new_rejects_bad_tables_as_invalid_argument() {
        assert_eq!(
            FunctionTable::new([(1, "a"), (1, "b")]).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            FunctionTable::new([(1, "a"), (2, "a")]).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            FunctionTable::new([(1, "")]).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let long = "y".repeat(256);
        assert_eq!(
            FunctionTable::new([(1, long.as_str())]).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let max = "z".repeat(255);
        assert!(FunctionTable::new([(1, max.as_str())]).is_ok());
    }

    #[test]
    fn encode_into_is_byte_exact_and_refuses_a_short_buffer() {
        let mut buf = [0u8; 23];
        assert_eq!(
            encode_into(&[(1, "f")], &mut buf).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let mut buf = [0xEEu8; 24];
        assert_eq!(encode_into(&[(1, "f")], &mut buf), Ok(24));
        let expected: [u8; 24] = [
            1, 0, 0, 0, 0, 0, 0, 0, // function_count, reserved
            1, 0, 0, 0, 1, 0, 0, 0, // id, name_len, flags
            b'f', 0, 0, 0, 0, 0, 0, 0, // name, padding
        ];
        assert_eq!(buf, expected);
    }
}
