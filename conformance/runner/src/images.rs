//! Byte images for `validate` cases: golden vectors with their field descriptions, patches
//! addressed by field name or offset, and rings and regions built from a readable source form
//! with computed offsets and lengths (conformance/README.md §5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use knit_core::crc32::crc32;
use knit_core::geometry::Params;
use knit_core::layout::HEADER_CRC_OFFSET;
use knit_core::records;
use knit_core::region::{HostIdentity, Region};
use knit_core::ring::{HEAD_OFFSET, RING_CTRL_LEN, TAIL_OFFSET};
use serde_json::Value;

use crate::mem::Aligned;
use crate::payload::{payload, unhex};

/// A described field of a golden vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDesc {
    /// Dotted name, e.g. `header.major`.
    pub name: String,
    /// Offset in the image.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// `u16`, `u32`, `u64`, `bytes` or `utf8z`.
    pub ty: String,
}

/// A golden vector: its bytes and described fields.
#[derive(Clone, Debug)]
pub struct Vector {
    /// Name (file stem).
    pub name: String,
    /// The image.
    pub bytes: Vec<u8>,
    /// The description's fields.
    pub fields: Vec<FieldDesc>,
    /// The whole JSON description.
    pub description: Value,
}

impl Vector {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&FieldDesc> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// How a validator decodes this vector: (`kind`, extra arguments), from its `validate`
    /// entry in the description; `None` for vectors that are not standalone images.
    pub fn validate_as(&self) -> Option<(String, Value)> {
        let v = self.description.get("validate")?;
        let kind = v.get("kind")?.as_str()?.to_owned();
        Some((kind, v.clone()))
    }
}

/// The golden vectors of one directory, by name.
#[derive(Clone, Debug, Default)]
pub struct Vectors {
    /// Vectors by name.
    pub by_name: BTreeMap<String, Vector>,
}

impl Vectors {
    /// Loads every `NAME.json` + `NAME.bin` pair of `dir`.
    pub fn load(dir: &Path) -> Result<Vectors, String> {
        let mut by_name = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let description: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let bin = path.with_extension("bin");
            let bytes = std::fs::read(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
            let fields = description
                .get("fields")
                .and_then(Value::as_array)
                .map(|fs| fs.iter().filter_map(field_desc).collect())
                .unwrap_or_default();
            by_name.insert(
                name.clone(),
                Vector {
                    name,
                    bytes,
                    fields,
                    description,
                },
            );
        }
        Ok(Vectors { by_name })
    }

    /// The vector `name`.
    pub fn get(&self, name: &str) -> Result<&Vector, String> {
        self.by_name
            .get(name)
            .ok_or_else(|| format!("no golden vector {name:?}"))
    }
}

fn field_desc(f: &Value) -> Option<FieldDesc> {
    Some(FieldDesc {
        name: f.get("name")?.as_str()?.to_owned(),
        offset: usize::try_from(f.get("offset")?.as_u64()?).ok()?,
        size: usize::try_from(f.get("size")?.as_u64()?).ok()?,
        ty: f.get("type")?.as_str()?.to_owned(),
    })
}

/// An image ready to send: a base (stored once per agent under `base_name`) and patches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Name the base is stored under in the agent.
    pub base_name: String,
    /// The base bytes.
    pub base: Vec<u8>,
    /// `(offset, bytes)` replacements, in order.
    pub patches: Vec<(usize, Vec<u8>)>,
}

impl Image {
    /// The final bytes: the base with every patch applied (a patch past the end extends it
    /// with zeros first).
    pub fn bytes(&self) -> Vec<u8> {
        apply(&self.base, &self.patches)
    }
}

/// Applies `(offset, bytes)` patches to a copy of `base`.
pub fn apply(base: &[u8], patches: &[(usize, Vec<u8>)]) -> Vec<u8> {
    let mut out = base.to_vec();
    for (off, bytes) in patches {
        let end = off.saturating_add(bytes.len());
        if end > out.len() {
            out.resize(end, 0);
        }
        out[*off..end].copy_from_slice(bytes);
    }
    out
}

/// An integer as a TOML/JSON value: a number, a decimal or `0x` hex string, or one of `MAX`,
/// `MAX-1` (of `size` bytes).
pub fn int_value(v: &Value, size: usize) -> Result<u64, String> {
    let max = if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * size)) - 1
    };
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_i64().map(|i| u64::from_ne_bytes(i.to_ne_bytes())))
            .ok_or_else(|| format!("not an integer: {n}")),
        Value::String(s) if s == "MAX" => Ok(max),
        Value::String(s) if s == "MAX-1" => Ok(max - 1),
        Value::String(s) => {
            if let Some(h) = s.strip_prefix("0x") {
                u64::from_str_radix(&h.replace('_', ""), 16).map_err(|e| format!("{s}: {e}"))
            } else {
                s.replace('_', "").parse().map_err(|e| format!("{s}: {e}"))
            }
        }
        other => Err(format!("not an integer: {other}")),
    }
}

fn le(value: u64, size: usize) -> Vec<u8> {
    value.to_le_bytes()[..size.min(8)].to_vec()
}

/// Resolves one patch table (`field` or `offset`, with `value`, `hex`, `u8`, `u16`, `u32`,
/// `u64` or `add`) against `vector` (which may be `None` for built images).
pub fn patch(p: &Value, vector: Option<&Vector>, base: &[u8]) -> Result<(usize, Vec<u8>), String> {
    let (offset, size) = if let Some(name) = p.get("field").and_then(Value::as_str) {
        let f = vector
            .ok_or("a field patch needs a golden vector")?
            .field(name)
            .ok_or_else(|| format!("no field {name:?}"))?;
        (f.offset, f.size)
    } else {
        let off = p.get("offset").ok_or("a patch needs `field` or `offset`")?;
        (
            usize::try_from(int_value(off, 8)?).map_err(|e| e.to_string())?,
            0,
        )
    };
    for (key, width) in [("u8", 1), ("u16", 2), ("u32", 4), ("u64", 8)] {
        if let Some(v) = p.get(key) {
            return Ok((offset, le(int_value(v, width)?, width)));
        }
    }
    if let Some(h) = p.get("hex").and_then(Value::as_str) {
        return Ok((offset, unhex(h).ok_or_else(|| format!("bad hex {h:?}"))?));
    }
    if size == 0 || size > 8 {
        return Err(format!("patch at {offset}: give hex or a width (u8..u64)"));
    }
    let current = {
        let mut b = [0u8; 8];
        let src = base
            .get(offset..offset + size)
            .ok_or("patch outside the image")?;
        b[..size].copy_from_slice(src);
        u64::from_le_bytes(b)
    };
    if let Some(v) = p.get("value") {
        return Ok((offset, le(int_value(v, size)?, size)));
    }
    if let Some(d) = p.get("add").and_then(Value::as_i64) {
        return Ok((offset, le(current.wrapping_add_signed(d), size)));
    }
    Err(format!("patch at {offset}: nothing to write"))
}

/// The bytes a poke writes: one of `u8`, `u16`, `u32`, `u64` (an integer) or `hex`.
pub fn patch_bytes(p: &Value) -> Result<Vec<u8>, String> {
    for (key, width) in [("u8", 1), ("u16", 2), ("u32", 4), ("u64", 8)] {
        if let Some(v) = p.get(key) {
            return Ok(le(int_value(v, width)?, width));
        }
    }
    let h = p
        .get("hex")
        .and_then(Value::as_str)
        .ok_or("give u8, u16, u32, u64 or hex")?;
    unhex(h).ok_or_else(|| format!("bad hex {h:?}"))
}

/// The patch that makes the header checksum of `bytes` right again (HDR-4).
pub fn crc_fix(bytes: &[u8]) -> Option<(usize, Vec<u8>)> {
    let mut header = bytes.get(..256)?.to_vec();
    header[HEADER_CRC_OFFSET..HEADER_CRC_OFFSET + 4].fill(0);
    Some((HEADER_CRC_OFFSET, crc32(&header).to_le_bytes().to_vec()))
}

/// Builds the image an `image` argument describes: `"vectors:NAME"` or a table with `base`
/// (`"vectors:NAME"`) or `build` (`"ring"`, `"region"`), plus `patches`, `fix_crc`, `truncate`.
pub fn resolve(spec: &Value, vectors: &Vectors, case_id: &str) -> Result<Image, String> {
    if let Some(s) = spec.as_str() {
        return resolve(&serde_json::json!({ "base": s }), vectors, case_id);
    }
    let mut vector = None;
    let (base_name, base) = if let Some(b) = spec.get("base").and_then(Value::as_str) {
        let name = b
            .strip_prefix("vectors:")
            .ok_or_else(|| format!("unknown image source {b:?}"))?;
        let v = vectors.get(name)?;
        vector = Some(v);
        (format!("vectors:{name}"), v.bytes.clone())
    } else {
        match spec.get("build").and_then(Value::as_str) {
            Some("ring") => (format!("case:{case_id}"), build_ring(spec)?),
            Some("region") => (format!("case:{case_id}"), build_region(spec)?),
            Some("bytes") => (
                format!("case:{case_id}"),
                build_bytes(spec.get("parts").ok_or("bytes needs parts")?)?,
            ),
            other => return Err(format!("image needs `base` or `build`, got {other:?}")),
        }
    };
    let mut patches = Vec::new();
    let mut current = base.clone();
    for p in spec
        .get("patches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let resolved = patch(p, vector, &current)?;
        current = apply(&current, std::slice::from_ref(&resolved));
        patches.push(resolved);
    }
    if spec.get("fix_crc").and_then(Value::as_bool) == Some(true) {
        let fix = crc_fix(&current).ok_or("fix_crc on an image shorter than a header")?;
        current = apply(&current, std::slice::from_ref(&fix));
        patches.push(fix);
    }
    let mut image = Image {
        base_name,
        base,
        patches,
    };
    if let Some(s) = spec.get("slice") {
        let off = usize::try_from(int_value(s.get("offset").ok_or("slice needs offset")?, 8)?)
            .map_err(|e| e.to_string())?;
        let len = usize::try_from(int_value(s.get("len").ok_or("slice needs len")?, 8)?)
            .map_err(|e| e.to_string())?;
        current = current
            .get(off..off.saturating_add(len))
            .ok_or("slice outside the image")?
            .to_vec();
        image = Image {
            base_name: format!("case:{case_id}"),
            base: current.clone(),
            patches: Vec::new(),
        };
    }
    if let Some(t) = spec.get("truncate") {
        let n = usize::try_from(int_value(t, 8)?).map_err(|e| e.to_string())?;
        // Shorter cuts the image; longer extends it with zeros (a mapping past region_len).
        current.resize(n, 0);
        image = Image {
            base_name: format!("case:{case_id}"),
            base: current,
            patches: Vec::new(),
        };
    }
    Ok(image)
}

/// Bytes from a list of parts: `{hex}`, `{u16|u32|u64}`, `{zeros = n}`, `{payload = {seed, len}}`,
/// `{utf8 = "text"}`.
pub fn build_bytes(parts: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for p in parts.as_array().ok_or("parts must be a list")? {
        let mut done = false;
        for (key, width) in [("u8", 1), ("u16", 2), ("u32", 4), ("u64", 8)] {
            if let Some(v) = p.get(key) {
                out.extend(le(int_value(v, width)?, width));
                done = true;
            }
        }
        if let Some(h) = p.get("hex").and_then(Value::as_str) {
            out.extend(unhex(h).ok_or_else(|| format!("bad hex {h:?}"))?);
            done = true;
        }
        if let Some(n) = p.get("zeros") {
            out.resize(
                out.len() + usize::try_from(int_value(n, 8)?).map_err(|e| e.to_string())?,
                0,
            );
            done = true;
        }
        if let Some(t) = p.get("utf8").and_then(Value::as_str) {
            out.extend_from_slice(t.as_bytes());
            done = true;
        }
        if let Some(pl) = p.get("payload") {
            out.extend(payload_of(pl)?);
            done = true;
        }
        if !done {
            return Err(format!("unknown part {p}"));
        }
    }
    Ok(out)
}

/// `{seed, len}` or `{hex}` as bytes.
pub fn payload_of(v: &Value) -> Result<Vec<u8>, String> {
    if let Some(h) = v.get("hex").and_then(Value::as_str) {
        return unhex(h).ok_or_else(|| format!("bad hex {h:?}"));
    }
    let seed = int_value(v.get("seed").ok_or("payload needs seed")?, 8)?;
    let len = usize::try_from(int_value(v.get("len").ok_or("payload needs len")?, 8)?)
        .map_err(|e| e.to_string())?;
    Ok(payload(seed, len))
}

/// A record type by registry name or number.
pub fn record_type(v: &Value) -> Result<u16, String> {
    if let Some(s) = v.as_str() {
        let t = match s {
            "PAD" => records::TYPE_PAD,
            "CONT" => records::TYPE_CONT,
            "REQUEST" => records::TYPE_REQUEST,
            "RESPONSE" => records::TYPE_RESPONSE,
            "HELLO" => records::TYPE_HELLO,
            "SHUTDOWN" => records::TYPE_SHUTDOWN,
            "CHANNEL_OPEN" => records::TYPE_CHANNEL_OPEN,
            "DATA" => records::TYPE_DATA,
            "END" => records::TYPE_END,
            _ => return u16::try_from(int_value(v, 2)?).map_err(|e| e.to_string()),
        };
        return Ok(t);
    }
    u16::try_from(int_value(v, 2)?).map_err(|e| e.to_string())
}

/// Record flags: a number or names joined by `|` (`FIRST`, `LAST`, `SKIPPABLE`, `NONE`).
pub fn record_flags(v: &Value) -> Result<u16, String> {
    if let Some(s) = v.as_str() {
        let mut f = 0u16;
        for part in s.split('|').map(str::trim) {
            f |= match part {
                "FIRST" => records::FLAG_FIRST,
                "LAST" => records::FLAG_LAST,
                "SKIPPABLE" => records::FLAG_SKIPPABLE,
                "NONE" | "" => 0,
                other => u16::try_from(int_value(&Value::String(other.into()), 2)?)
                    .map_err(|e| e.to_string())?,
            };
        }
        return Ok(f);
    }
    u16::try_from(int_value(v, 2)?).map_err(|e| e.to_string())
}

fn opt_u64(v: &Value, key: &str, default: u64) -> Result<u64, String> {
    v.get(key).map_or(Ok(default), |x| int_value(x, 8))
}

/// The body of one record of the source form.
pub fn record_body(r: &Value) -> Result<Vec<u8>, String> {
    use knit_core::records::{ChannelOpen, DataHead, HelloHead, RequestHead, ResponseHead};
    if let Some(h) = r.get("hex").and_then(Value::as_str) {
        return unhex(h).ok_or_else(|| format!("bad hex {h:?}"));
    }
    if let Some(n) = r.get("body_len") {
        return Ok(vec![
            0;
            usize::try_from(int_value(n, 8)?)
                .map_err(|e| e.to_string())?
        ]);
    }
    let pl = |v: &Value| v.get("payload").map_or(Ok(Vec::new()), payload_of);
    if let Some(q) = r.get("request") {
        let p = pl(q)?;
        let head = RequestHead {
            request_id: opt_u64(q, "request_id", 1)?,
            function_id: opt_u64(q, "function_id", 1)? as u32,
            content_type: opt_u64(q, "content_type", 0)? as u32,
            deadline_ns: opt_u64(q, "deadline_ns", 0)?,
            payload_len: opt_u64(q, "payload_len", p.len() as u64)?,
        };
        return Ok([&head.encode()[..], &p].concat());
    }
    if let Some(q) = r.get("response") {
        let p = pl(q)?;
        let head = ResponseHead {
            request_id: opt_u64(q, "request_id", 1)?,
            status: opt_u64(q, "status", 0)? as u32,
            content_type: opt_u64(q, "content_type", 0)? as u32,
            payload_len: opt_u64(q, "payload_len", p.len() as u64)?,
        };
        return Ok([&head.encode()[..], &p].concat());
    }
    if let Some(q) = r.get("hello") {
        let table = match q.get("functions").and_then(Value::as_array) {
            Some(fs) => {
                let list: Vec<(u32, String)> = fs
                    .iter()
                    .filter_map(|f| {
                        Some((f.get(0)?.as_u64()? as u32, f.get(1)?.as_str()?.to_owned()))
                    })
                    .collect();
                fntable(&list)
            }
            None => pl(q)?,
        };
        let head = HelloHead {
            payload_len: opt_u64(q, "payload_len", table.len() as u64)?,
        };
        return Ok([&head.encode()[..], &table].concat());
    }
    if let Some(q) = r.get("data") {
        let p = pl(q)?;
        let head = DataHead {
            content_type: opt_u64(q, "content_type", 0)? as u32,
            payload_len: opt_u64(q, "payload_len", p.len() as u64)?,
        };
        return Ok([&head.encode()[..], &p].concat());
    }
    if let Some(q) = r.get("channel_open") {
        let o = ChannelOpen {
            channel: opt_u64(q, "channel", 0)? as u32,
            epoch: opt_u64(q, "epoch", 1)? as u32,
            tag: opt_u64(q, "tag", 0)?,
        };
        return Ok(o.encode().to_vec());
    }
    if let Some(q) = r.get("cont") {
        return pl(q);
    }
    Ok(Vec::new())
}

/// Encodes a function table with the wire form of spec/05 §5.3, without checking FN-1 (so that
/// broken tables can be built too).
pub fn fntable(functions: &[(u32, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend((functions.len() as u32).to_le_bytes());
    out.extend([0u8; 4]);
    for (id, name) in functions {
        out.extend(id.to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend([0u8; 2]);
        out.extend_from_slice(name.as_bytes());
        out.resize(out.len().next_multiple_of(8), 0);
    }
    out
}

/// Where a built record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Position of its header.
    pub pos: u64,
    /// Bytes it occupies (`8 + align8(len)` of the body written).
    pub size: u64,
}

/// Writes `records` (the source form) into `data` (`cap` bytes) from position `start`,
/// inserting a PAD before a record that does not fit before the end (RING-2) unless the
/// record says `no_pad = true`. Returns the positions and the end position.
pub fn lay_records(
    data: &mut [u8],
    start: u64,
    list: &[Value],
) -> Result<(Vec<Placed>, u64), String> {
    let cap = data.len() as u64;
    let mut pos = start;
    let mut placed = Vec::new();
    for r in list {
        let body = record_body(r)?;
        let rtype = record_type(r.get("type").unwrap_or(&Value::String("DATA".into())))?;
        let flags = r
            .get("flags")
            .map_or(Ok(records::FLAGS_SINGLE), record_flags)?;
        let len = r
            .get("len")
            .map_or(Ok(body.len() as u64), |v| int_value(v, 4))? as u32;
        if let Some(at) = r.get("at") {
            pos = int_value(at, 8)?;
        }
        let size = 8 + (body.len() as u64).next_multiple_of(8);
        let off = pos % cap;
        if off + size > cap && r.get("no_pad").and_then(Value::as_bool) != Some(true) {
            let pad_len = (cap - off - 8) as u32;
            write_wrapping(data, pos, &header(pad_len, records::TYPE_PAD, 0));
            pos += cap - off;
        }
        let mut bytes = header(len, rtype, flags).to_vec();
        bytes.extend_from_slice(&body);
        bytes.resize(size as usize, 0);
        write_wrapping(data, pos, &bytes);
        placed.push(Placed { pos, size });
        pos += size;
    }
    Ok((placed, pos))
}

fn header(len: u32, rtype: u16, flags: u16) -> [u8; 8] {
    knit_core::ring::RecordHeader { len, rtype, flags }.to_bytes()
}

/// Writes `bytes` at position `pos` of a ring data area, wrapping at its end (only records
/// built to cross the end on purpose wrap).
fn write_wrapping(data: &mut [u8], pos: u64, bytes: &[u8]) {
    let cap = data.len();
    for (i, b) in bytes.iter().enumerate() {
        let at = (pos as usize + i) % cap;
        data[at] = *b;
    }
}

/// A ring image: 128-byte control block, then `cap` data bytes, from the source form
/// `{cap, head, records, tail | tail_delta}` (tail defaults to the end of the last record).
pub fn build_ring(spec: &Value) -> Result<Vec<u8>, String> {
    let cap = usize::try_from(opt_u64(spec, "cap", 4096)?).map_err(|e| e.to_string())?;
    let head = opt_u64(spec, "head", 0)?;
    let mut data = vec![0u8; cap];
    let list = spec
        .get("records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (_, end) = lay_records(&mut data, head, &list)?;
    let tail = match spec.get("tail") {
        Some(t) => int_value(t, 8)?,
        None => {
            end.wrapping_add_signed(spec.get("tail_delta").and_then(Value::as_i64).unwrap_or(0))
        }
    };
    let mut out = vec![0u8; RING_CTRL_LEN];
    out[TAIL_OFFSET..TAIL_OFFSET + 8].copy_from_slice(&tail.to_le_bytes());
    out[HEAD_OFFSET..HEAD_OFFSET + 8].copy_from_slice(&head.to_le_bytes());
    out.extend(data);
    Ok(out)
}

/// Parameters from a `params` table; unnamed ones take the golden region's values.
pub fn params(v: Option<&Value>) -> Result<Params, String> {
    let get = |k: &str, d: u64| v.and_then(|v| v.get(k)).map_or(Ok(d), |x| int_value(x, 8));
    Ok(Params {
        worker_slots: get("worker_slots", 1)? as u32,
        channel_slots: get("channel_slots", 1)? as u32,
        inflight_max: get("inflight_max", 4)? as u32,
        request_ring_cap: get("request_ring_cap", 4096)? as u32,
        response_ring_cap: get("response_ring_cap", 4096)? as u32,
        channel_ring_cap: get("channel_ring_cap", 4096)? as u32,
        max_message_len: get("max_message_len", 1 << 20)?,
    })
}

/// A region image a 1.0 creator makes from `params` (fixed identity and id, as the golden
/// region vector).
pub fn build_region(spec: &Value) -> Result<Vec<u8>, String> {
    let p = params(spec.get("params"))?;
    let g = knit_core::Geometry::compute(&p).map_err(|e| e.to_string())?;
    let mut mem = Aligned::zeroed(g.region_len());
    let host = HostIdentity {
        pid: 4242,
        start_time: 123_456,
        impl_name: "knit-rs 1.0",
    };
    let id: [u8; 16] = core::array::from_fn(|i| i as u8);
    Region::format(mem.mem(), &p, &host, id, 1_700_000_000_000_000_000)
        .map_err(|e| e.to_string())?;
    Ok(mem.to_vec())
}

/// Writes source-form records through a [`RawRing`] at its private tail (the adversary's
/// writes into a live ring): each record's `len`, `type`, `flags` and `no_pad` as given.
/// Does not publish.
pub fn lay_records_raw(ring: &mut crate::raw::RawRing<'_>, list: &[Value]) -> Result<(), String> {
    for r in list {
        let body = record_body(r)?;
        let rtype = record_type(r.get("type").unwrap_or(&Value::String("DATA".into())))?;
        let flags = r
            .get("flags")
            .map_or(Ok(records::FLAGS_SINGLE), record_flags)?;
        let len = r
            .get("len")
            .map_or(Ok(body.len() as u64), |v| int_value(v, 4))? as u32;
        let no_pad = r.get("no_pad").and_then(Value::as_bool) == Some(true);
        if !ring
            .append(len, rtype, flags, &body, no_pad)
            .map_err(|e| e.to_string())?
        {
            return Err("no room in the ring for the adversary's records".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_built_ring_pads_at_the_wrap_and_computes_the_tail() {
        let spec = json!({"cap": 4096, "head": 3072, "records": [
            {"type": "DATA", "data": {"payload": {"seed": 1, "len": 900}}},
            {"type": "DATA", "data": {"payload": {"seed": 2, "len": 100}}},
        ]});
        let img = build_ring(&spec).unwrap();
        let tail = u64::from_le_bytes(img[0..8].try_into().unwrap());
        // 8 + 16 + 900 = 924 -> 928 bytes at 3072; the second (128 bytes) needs a PAD of 96.
        assert_eq!(tail, 3072 + 928 + 96 + 128);
        let pad = &img[RING_CTRL_LEN + 4000..RING_CTRL_LEN + 4008];
        assert_eq!(pad, &header(88, records::TYPE_PAD, 0));
        let v = crate::validate::validate("ring", &img, &json!({"ring_kind": "channel"})).unwrap();
        assert_eq!(v.name(), "valid");
        assert_eq!(v.to_json()["messages"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn integers_and_patches_resolve() {
        assert_eq!(int_value(&json!("MAX"), 2), Ok(0xFFFF));
        assert_eq!(int_value(&json!("MAX-1"), 4), Ok(0xFFFF_FFFE));
        assert_eq!(int_value(&json!("0x10"), 8), Ok(16));
        assert_eq!(int_value(&json!(-1), 8), Ok(u64::MAX));
        let base = vec![0u8; 16];
        assert_eq!(
            patch(&json!({"offset": 4, "u16": 513}), None, &base),
            Ok((4, vec![1, 2]))
        );
        assert_eq!(apply(&base, &[(15, vec![1, 2])]).len(), 17);
        assert_eq!(record_flags(&json!("FIRST|LAST")), Ok(3));
        assert_eq!(record_type(&json!("END")), Ok(0x31));
    }
}
