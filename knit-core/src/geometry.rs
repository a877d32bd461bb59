//! Region geometry: where every section lies, computed by a creator from [`Params`] (LAYOUT-1)
//! or validated by an attacher from a private header copy (HDR-1 to HDR-7).
//!
//! A [`Geometry`] only exists once it passed HDR-6, so every offset and length it hands out lies
//! inside `[0, region_len)`, and `region_len` fits the address space. Its accessors still use
//! checked arithmetic and return `None` rather than trusting that invariant blindly.

use zerocopy::little_endian::{U16, U32, U64};

use crate::error::{Error, ErrorCode, Result};
use crate::layout::{
    RegionHeader, CACHE_LINE, CANCEL_ENTRY_LEN, CHANNEL_RING_CTRL_OFFSET, CHANNEL_RING_DATA_OFFSET,
    CONTROL_LEN, FEATURE_CHANNELS, FIRST_SECTION_OFFSET, HEADER_LEN, KNOWN_FEATURES, MAGIC, MAJOR,
    MAX_CHANNEL_SLOTS, MAX_INFLIGHT, MAX_MESSAGE_LEN, MAX_RING_CAP, MAX_WORKER_SLOTS, MINOR,
    MIN_RING_CAP, PARTICIPANT_STRIDE,
};
use crate::ring::RING_CTRL_LEN;

/// What a creator chooses; everything else in the header follows from it (LAYOUT-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Number of workers (mailboxes), 1 to 1024.
    pub worker_slots: u32,
    /// Number of channel slots, 0 to 4096.
    pub channel_slots: u32,
    /// Outstanding calls per mailbox (cancel table entries): a power of two, 1 to 65536.
    pub inflight_max: u32,
    /// Data bytes of each request ring: a power of two, 4096 to 2^30.
    pub request_ring_cap: u32,
    /// Data bytes of each response ring: same rule.
    pub response_ring_cap: u32,
    /// Data bytes of each channel ring: same rule; ignored (written as 0) without channel slots.
    pub channel_ring_cap: u32,
    /// Largest message payload, 1 to 2^40.
    pub max_message_len: u64,
}

impl Default for Params {
    /// One worker, 8 channels, 256 calls in flight, 256 KiB call rings, 64 KiB channel rings,
    /// 64 MiB messages.
    fn default() -> Self {
        Params {
            worker_slots: 1,
            channel_slots: 8,
            inflight_max: 256,
            request_ring_cap: 256 << 10,
            response_ring_cap: 256 << 10,
            channel_ring_cap: 64 << 10,
            max_message_len: 64 << 20,
        }
    }
}

/// A byte range of the region: `offset` from the region start and `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Offset from the start of the region.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Span {
    /// One past the last byte (no overflow: spans come from a validated geometry).
    pub fn end(&self) -> usize {
        self.offset.saturating_add(self.len)
    }
}

/// Where the parts of mailbox `m` lie (§1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxLayout {
    /// The cancel table: `inflight_max` u64 entries.
    pub cancel: Span,
    /// The request ring's 128-byte control block.
    pub request_ctrl: Span,
    /// The request ring's data, `request_ring_cap` bytes.
    pub request_data: Span,
    /// The response ring's 128-byte control block.
    pub response_ctrl: Span,
    /// The response ring's data, `response_ring_cap` bytes.
    pub response_data: Span,
}

/// Where the parts of channel slot `j` lie (§1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLayout {
    /// The 64-byte channel control block.
    pub ctrl: Span,
    /// The ring's 128-byte control block.
    pub ring_ctrl: Span,
    /// The ring's data, `channel_ring_cap` bytes.
    pub ring_data: Span,
}

/// Every value of a validated header, as plain integers (HDR-5: the only copy used after
/// attaching). Construct with [`Geometry::compute`] or [`Geometry::from_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    minor: u16,
    header_len: u32,
    region_len: u64,
    required_features: u64,
    optional_features: u64,
    cache_line: u32,
    worker_slots: u32,
    channel_slots: u32,
    inflight_max: u32,
    request_ring_cap: u32,
    response_ring_cap: u32,
    channel_ring_cap: u32,
    participant_stride: u32,
    max_message_len: u64,
    participants_off: u64,
    mailboxes_off: u64,
    mailbox_stride: u64,
    channels_off: u64,
    channel_stride: u64,
}

const CACHE_LINE_U64: u64 = CACHE_LINE as u64;

fn align64(n: u64) -> Option<u64> {
    Some(n.checked_add(CACHE_LINE_U64 - 1)? & !(CACHE_LINE_U64 - 1))
}

fn layout_err(what: &'static str, found: u64, expected: u64) -> Error {
    Error::value(ErrorCode::BadLayout, what, found, expected)
}

/// HDR-6 "an overflow is a refusal".
fn overflow(what: &'static str) -> Error {
    Error::value(ErrorCode::BadLayout, what, u64::MAX, 0)
}

/// `value` in `[min, max]`, else `BadLayout` naming the bound it broke.
fn in_range(what: &'static str, value: u64, min: u64, max: u64) -> Result<()> {
    if value < min {
        Err(layout_err(what, value, min))
    } else if value > max {
        Err(layout_err(what, value, max))
    } else {
        Ok(())
    }
}

fn power_of_two(what: &'static str, value: u64) -> Result<()> {
    if value.is_power_of_two() {
        Ok(())
    } else {
        Err(layout_err(
            what,
            value,
            value.checked_next_power_of_two().unwrap_or(0),
        ))
    }
}

fn multiple_of_64(what: &'static str, value: u64) -> Result<()> {
    if value % CACHE_LINE_U64 == 0 {
        Ok(())
    } else {
        Err(layout_err(what, value, align64(value).unwrap_or(0)))
    }
}

fn ring_cap(what: &'static str, cap: u32) -> Result<()> {
    in_range(what, cap.into(), MIN_RING_CAP.into(), MAX_RING_CAP.into())?;
    power_of_two(what, cap.into())
}

/// The minimum `mailbox_stride` of §1.3: `align64(8 × inflight_max) + 256 + request + response`.
fn min_mailbox_stride(inflight_max: u32, request_cap: u32, response_cap: u32) -> Option<u64> {
    let cancel = align64(u64::from(inflight_max).checked_mul(CANCEL_ENTRY_LEN as u64)?)?;
    cancel
        .checked_add(2 * RING_CTRL_LEN as u64)?
        .checked_add(request_cap.into())?
        .checked_add(response_cap.into())
}

/// A section `[start, start + count × stride)`; `None` on overflow.
fn section(start: u64, count: u64, stride: u64) -> Option<(u64, u64)> {
    Some((start, start.checked_add(count.checked_mul(stride)?)?))
}

/// Converts a span of a validated geometry to `usize`; `None` if it does not fit.
fn span(offset: u64, len: u64) -> Option<Span> {
    let offset = usize::try_from(offset).ok()?;
    let len = usize::try_from(len).ok()?;
    offset.checked_add(len)?;
    Some(Span { offset, len })
}

impl Geometry {
    /// The geometry a 1.0 creator writes for `p` (LAYOUT-1): participant table at 0x140, every
    /// following section right after the previous one, rounded up to 64, `region_len` at the end
    /// of the last. Invalid parameters are `InvalidArgument` naming the field, the value and
    /// the bound.
    pub fn compute(p: &Params) -> Result<Geometry> {
        check_params(p)?;
        let invalid =
            |what: &'static str| Error::value(ErrorCode::InvalidArgument, what, u64::MAX, 0);

        let has_channels = p.channel_slots > 0;
        let channel_ring_cap = if has_channels { p.channel_ring_cap } else { 0 };
        let participants_off = FIRST_SECTION_OFFSET as u64;
        let participant_stride = PARTICIPANT_STRIDE as u32;
        let (_, participants_end) = section(
            participants_off,
            u64::from(p.worker_slots) + 1,
            participant_stride.into(),
        )
        .ok_or(invalid("params: participant table size"))?;
        let mailboxes_off = align64(participants_end).ok_or(invalid("params: mailboxes offset"))?;
        let mailbox_stride = align64(
            min_mailbox_stride(p.inflight_max, p.request_ring_cap, p.response_ring_cap)
                .ok_or(invalid("params: mailbox size"))?,
        )
        .ok_or(invalid("params: mailbox size"))?;
        let (_, mailboxes_end) = section(mailboxes_off, p.worker_slots.into(), mailbox_stride)
            .ok_or(invalid("params: mailboxes size"))?;
        let (channels_off, channel_stride, region_len) = if has_channels {
            let off = align64(mailboxes_end).ok_or(invalid("params: channels offset"))?;
            let stride = CHANNEL_RING_DATA_OFFSET as u64 + u64::from(channel_ring_cap);
            let (_, end) = section(off, p.channel_slots.into(), stride)
                .ok_or(invalid("params: channels size"))?;
            (off, stride, end)
        } else {
            (0, 0, mailboxes_end)
        };

        let g = Geometry {
            minor: MINOR,
            header_len: HEADER_LEN as u32,
            region_len,
            required_features: 0, // FEAT-1: a 1.0 creator sets no required bit.
            optional_features: if has_channels { FEATURE_CHANNELS } else { 0 },
            cache_line: CACHE_LINE as u32,
            worker_slots: p.worker_slots,
            channel_slots: p.channel_slots,
            inflight_max: p.inflight_max,
            request_ring_cap: p.request_ring_cap,
            response_ring_cap: p.response_ring_cap,
            channel_ring_cap,
            participant_stride,
            max_message_len: p.max_message_len,
            participants_off,
            mailboxes_off,
            mailbox_stride,
            channels_off,
            channel_stride,
        };
        // What a creator writes must pass what every attacher checks; the only way left to fail
        // is a region larger than this machine's address space.
        g.check_layout().map_err(|e| Error {
            code: ErrorCode::InvalidArgument,
            ..e
        })?;
        Ok(g)
    }

    /// Validates a private header copy against a mapping of `mapping_len` bytes and returns its
    /// geometry. Checks, in the order HDR-9 fixes: `magic` (HDR-1, `BadMagic`), `major`
    /// (HDR-2, `UnsupportedVersion`, found `major << 16 | minor`, expected `1 << 16 | 0`),
    /// `header_crc` (HDR-4, `BadChecksum`), `required_features` (HDR-3, `MissingFeature`,
    /// found = the unknown bits), `region_len` against the mapping (HDR-7, `RegionTooSmall`)
    /// and the geometry (HDR-6, `BadLayout`).
    pub fn from_header(h: &RegionHeader, mapping_len: usize) -> Result<Geometry> {
        // HDR-1
        if h.magic != MAGIC {
            return Err(Error::value(
                ErrorCode::BadMagic,
                "header.magic",
                u64::from_le_bytes(h.magic),
                u64::from_le_bytes(MAGIC),
            ));
        }
        // HDR-2
        let (major, minor) = (h.major.get(), h.minor.get());
        if major != MAJOR {
            return Err(Error::value(
                ErrorCode::UnsupportedVersion,
                "header.major (found and expected are major << 16 | minor)",
                u64::from(major) << 16 | u64::from(minor),
                u64::from(MAJOR) << 16 | u64::from(MINOR),
            ));
        }
        // HDR-4
        let crc = h.checksum();
        if h.header_crc.get() != crc {
            return Err(Error::value(
                ErrorCode::BadChecksum,
                "header.header_crc",
                h.header_crc.get().into(),
                crc.into(),
            ));
        }
        // HDR-3
        let unknown = h.required_features.get() & !KNOWN_FEATURES;
        if unknown != 0 {
            return Err(Error::value(
                ErrorCode::MissingFeature,
                "header.required_features (found = bits not implemented)",
                unknown,
                KNOWN_FEATURES,
            ));
        }
        // HDR-7
        let region_len = h.region_len.get();
        if region_len > mapping_len as u64 {
            return Err(Error::value(
                ErrorCode::RegionTooSmall,
                "mapping shorter than header.region_len",
                mapping_len as u64,
                region_len,
            ));
        }
        let g = Geometry {
            minor,
            header_len: h.header_len.get(),
            region_len,
            required_features: h.required_features.get(),
            optional_features: h.optional_features.get(),
            cache_line: h.cache_line.get(),
            worker_slots: h.worker_slots.get(),
            channel_slots: h.channel_slots.get(),
            inflight_max: h.inflight_max.get(),
            request_ring_cap: h.request_ring_cap.get(),
            response_ring_cap: h.response_ring_cap.get(),
            channel_ring_cap: h.channel_ring_cap.get(),
            participant_stride: h.participant_stride.get(),
            max_message_len: h.max_message_len.get(),
            participants_off: h.participants_off.get(),
            mailboxes_off: h.mailboxes_off.get(),
            mailbox_stride: h.mailbox_stride.get(),
            channels_off: h.channels_off.get(),
            channel_stride: h.channel_stride.get(),
        };
        // HDR-6
        g.check_layout()?;
        Ok(g)
    }

    /// HDR-6 on the plain values: every bound of the §1.1 table, the minimum strides of §1.3,
    /// alignment, containment and non-overlap of the sections, all with checked arithmetic.
    fn check_layout(&self) -> Result<()> {
        let first_free = self.check_lengths()?;
        self.check_counts()?;
        self.check_sections(first_free)
    }

    /// `header_len`, `region_len` and `cache_line`; returns the first offset a section may
    /// use: past the control block and any header extension (§1.1).
    fn check_lengths(&self) -> Result<u64> {
        let header_len = u64::from(self.header_len);
        multiple_of_64("header.header_len", header_len)?;
        in_range("header.header_len", header_len, HEADER_LEN as u64, u64::MAX)?;
        let first_free = header_len
            .checked_add(CONTROL_LEN as u64)
            .ok_or(overflow("header.header_len"))?;
        if first_free > self.region_len {
            return Err(layout_err(
                "header.header_len + 64 beyond header.region_len",
                first_free,
                self.region_len,
            ));
        }
        if usize::try_from(self.region_len).is_err() {
            return Err(layout_err(
                "header.region_len exceeds the address space",
                self.region_len,
                usize::MAX as u64,
            ));
        }
        if self.cache_line as usize != CACHE_LINE {
            return Err(layout_err(
                "header.cache_line",
                self.cache_line.into(),
                CACHE_LINE as u64,
            ));
        }
        Ok(first_free)
    }

    /// Counts, capacities and limits against the bounds of the §1.1 table.
    fn check_counts(&self) -> Result<()> {
        in_range(
            "header.worker_slots",
            self.worker_slots.into(),
            1,
            MAX_WORKER_SLOTS.into(),
        )?;
        in_range(
            "header.channel_slots",
            self.channel_slots.into(),
            0,
            MAX_CHANNEL_SLOTS.into(),
        )?;
        in_range(
            "header.inflight_max",
            self.inflight_max.into(),
            1,
            MAX_INFLIGHT.into(),
        )?;
        power_of_two("header.inflight_max", self.inflight_max.into())?;
        ring_cap("header.request_ring_cap", self.request_ring_cap)?;
        ring_cap("header.response_ring_cap", self.response_ring_cap)?;
        if self.channel_slots > 0 {
            ring_cap("header.channel_ring_cap", self.channel_ring_cap)?;
        }
        in_range(
            "header.max_message_len",
            self.max_message_len,
            1,
            MAX_MESSAGE_LEN,
        )
    }

    /// Offsets and strides: alignment, minimum sizes, containment in `[first_free, region_len)`
    /// and no overlap.
    fn check_sections(&self, first_free: u64) -> Result<()> {
        let stride = u64::from(self.participant_stride);
        multiple_of_64("header.participant_stride", stride)?;
        in_range(
            "header.participant_stride",
            stride,
            PARTICIPANT_STRIDE as u64,
            u64::MAX,
        )?;
        multiple_of_64("header.participants_off", self.participants_off)?;
        multiple_of_64("header.mailboxes_off", self.mailboxes_off)?;
        multiple_of_64("header.mailbox_stride", self.mailbox_stride)?;
        let min_mailbox = min_mailbox_stride(
            self.inflight_max,
            self.request_ring_cap,
            self.response_ring_cap,
        )
        .ok_or(overflow("mailbox size"))?;
        in_range(
            "header.mailbox_stride",
            self.mailbox_stride,
            min_mailbox,
            u64::MAX,
        )?;

        let participants = section(
            self.participants_off,
            u64::from(self.worker_slots) + 1,
            stride,
        )
        .ok_or(overflow("participant table end"))?;
        let mailboxes = section(
            self.mailboxes_off,
            self.worker_slots.into(),
            self.mailbox_stride,
        )
        .ok_or(overflow("mailboxes end"))?;
        self.inside("participant table", participants, first_free)?;
        self.inside("mailboxes", mailboxes, first_free)?;
        disjoint(
            "participant table and mailboxes overlap",
            participants,
            mailboxes,
        )?;

        if self.channel_slots == 0 {
            // §1.1: these are 0 when there are no channel slots.
            for (what, v) in [
                (
                    "header.channel_ring_cap (no channel slots)",
                    u64::from(self.channel_ring_cap),
                ),
                ("header.channels_off (no channel slots)", self.channels_off),
                (
                    "header.channel_stride (no channel slots)",
                    self.channel_stride,
                ),
            ] {
                if v != 0 {
                    return Err(layout_err(what, v, 0));
                }
            }
            return Ok(());
        }
        multiple_of_64("header.channels_off", self.channels_off)?;
        multiple_of_64("header.channel_stride", self.channel_stride)?;
        let min_channel = CHANNEL_RING_DATA_OFFSET as u64 + u64::from(self.channel_ring_cap);
        in_range(
            "header.channel_stride",
            self.channel_stride,
            min_channel,
            u64::MAX,
        )?;
        let channels = section(
            self.channels_off,
            self.channel_slots.into(),
            self.channel_stride,
        )
        .ok_or(overflow("channel slots end"))?;
        self.inside("channel slots", channels, first_free)?;
        disjoint(
            "participant table and channel slots overlap",
            participants,
            channels,
        )?;
        disjoint("mailboxes and channel slots overlap", mailboxes, channels)
    }

    /// HDR-6: a section lies inside `[first_free, region_len)`.
    fn inside(&self, what: &'static str, (start, end): (u64, u64), first_free: u64) -> Result<()> {
        if start < first_free {
            return Err(layout_err(what, start, first_free));
        }
        if end > self.region_len {
            return Err(layout_err(what, end, self.region_len));
        }
        Ok(())
    }

    /// The header a creator writes for this geometry, with `header_crc` filled in (HDR-4).
    pub fn to_header(&self, region_id: [u8; 16], created_unix_ns: u64) -> RegionHeader {
        let mut h = RegionHeader::zeroed();
        h.magic = MAGIC;
        h.major = U16::new(MAJOR);
        h.minor = U16::new(self.minor);
        h.header_len = U32::new(self.header_len);
        h.region_len = U64::new(self.region_len);
        h.required_features = U64::new(self.required_features);
        h.optional_features = U64::new(self.optional_features);
        h.cache_line = U32::new(self.cache_line);
        h.worker_slots = U32::new(self.worker_slots);
        h.channel_slots = U32::new(self.channel_slots);
        h.inflight_max = U32::new(self.inflight_max);
        h.request_ring_cap = U32::new(self.request_ring_cap);
        h.response_ring_cap = U32::new(self.response_ring_cap);
        h.channel_ring_cap = U32::new(self.channel_ring_cap);
        h.participant_stride = U32::new(self.participant_stride);
        h.max_message_len = U64::new(self.max_message_len);
        h.participants_off = U64::new(self.participants_off);
        h.mailboxes_off = U64::new(self.mailboxes_off);
        h.mailbox_stride = U64::new(self.mailbox_stride);
        h.channels_off = U64::new(self.channels_off);
        h.channel_stride = U64::new(self.channel_stride);
        h.created_unix_ns = U64::new(created_unix_ns);
        h.region_id = region_id;
        h.header_crc = U32::new(h.checksum());
        h
    }

    /// Total bytes of the region (fits `usize`: checked by HDR-6).
    pub fn region_len(&self) -> usize {
        usize::try_from(self.region_len).unwrap_or(usize::MAX)
    }

    /// The entry of participant `i` (0 = host, 1..=`worker_slots` = workers) as
    /// `(offset, len)` with `len` = `participant_stride`; `None` past the table.
    pub fn participant_range(&self, i: u32) -> Option<(usize, usize)> {
        if i > self.worker_slots {
            return None;
        }
        let stride = u64::from(self.participant_stride);
        let off = self
            .participants_off
            .checked_add(u64::from(i).checked_mul(stride)?)?;
        let s = span(off, stride)?;
        Some((s.offset, s.len))
    }

    /// The parts of mailbox `m` (0 ≤ m < `worker_slots`, owned by participant `m + 1`).
    pub fn mailbox_layout(&self, m: u32) -> Option<MailboxLayout> {
        if m >= self.worker_slots {
            return None;
        }
        let base = self
            .mailboxes_off
            .checked_add(u64::from(m).checked_mul(self.mailbox_stride)?)?;
        let cancel_len = u64::from(self.inflight_max).checked_mul(CANCEL_ENTRY_LEN as u64)?;
        let ctrl = RING_CTRL_LEN as u64;
        let req_ctrl = base.checked_add(align64(cancel_len)?)?;
        let req_data = req_ctrl.checked_add(ctrl)?;
        let resp_ctrl = req_data.checked_add(self.request_ring_cap.into())?;
        let resp_data = resp_ctrl.checked_add(ctrl)?;
        Some(MailboxLayout {
            cancel: span(base, cancel_len)?,
            request_ctrl: span(req_ctrl, ctrl)?,
            request_data: span(req_data, self.request_ring_cap.into())?,
            response_ctrl: span(resp_ctrl, ctrl)?,
            response_data: span(resp_data, self.response_ring_cap.into())?,
        })
    }

    /// The parts of channel slot `j` (0 ≤ j < `channel_slots`).
    pub fn channel_layout(&self, j: u32) -> Option<ChannelLayout> {
        if j >= self.channel_slots {
            return None;
        }
        let base = self
            .channels_off
            .checked_add(u64::from(j).checked_mul(self.channel_stride)?)?;
        Some(ChannelLayout {
            ctrl: span(base, crate::layout::CHANNEL_CTRL_LEN as u64)?,
            ring_ctrl: span(
                base.checked_add(CHANNEL_RING_CTRL_OFFSET as u64)?,
                RING_CTRL_LEN as u64,
            )?,
            ring_data: span(
                base.checked_add(CHANNEL_RING_DATA_OFFSET as u64)?,
                self.channel_ring_cap.into(),
            )?,
        })
    }

    /// The region's minor version (informative: every minor of major 1 is accepted, VER-2).
    pub fn minor(&self) -> u16 {
        self.minor
    }
    /// `header_len`.
    pub fn header_len(&self) -> u32 {
        self.header_len
    }
    /// `required_features`.
    pub fn required_features(&self) -> u64 {
        self.required_features
    }
    /// `optional_features`.
    pub fn optional_features(&self) -> u64 {
        self.optional_features
    }
    /// `cache_line` (64).
    pub fn cache_line(&self) -> u32 {
        self.cache_line
    }
    /// `worker_slots`: number of mailboxes.
    pub fn worker_slots(&self) -> u32 {
        self.worker_slots
    }
    /// `channel_slots`.
    pub fn channel_slots(&self) -> u32 {
        self.channel_slots
    }
    /// `inflight_max`: entries of each cancel table.
    pub fn inflight_max(&self) -> u32 {
        self.inflight_max
    }
    /// `request_ring_cap`.
    pub fn request_ring_cap(&self) -> u32 {
        self.request_ring_cap
    }
    /// `response_ring_cap`.
    pub fn response_ring_cap(&self) -> u32 {
        self.response_ring_cap
    }
    /// `channel_ring_cap` (0 without channel slots).
    pub fn channel_ring_cap(&self) -> u32 {
        self.channel_ring_cap
    }
    /// `participant_stride`.
    pub fn participant_stride(&self) -> u32 {
        self.participant_stride
    }
    /// `max_message_len`.
    pub fn max_message_len(&self) -> u64 {
        self.max_message_len
    }
    /// `participants_off`.
    pub fn participants_off(&self) -> u64 {
        self.participants_off
    }
    /// `mailboxes_off`.
    pub fn mailboxes_off(&self) -> u64 {
        self.mailboxes_off
    }
    /// `mailbox_stride`.
    pub fn mailbox_stride(&self) -> u64 {
        self.mailbox_stride
    }
    /// `channels_off` (0 without channel slots).
    pub fn channels_off(&self) -> u64 {
        self.channels_off
    }
    /// `channel_stride` (0 without channel slots).
    pub fn channel_stride(&self) -> u64 {
        self.channel_stride
    }
}

/// HDR-6: no two sections overlap. Empty sections overlap nothing.
fn disjoint(what: &'static str, a: (u64, u64), b: (u64, u64)) -> Result<()> {
    let empty = |s: (u64, u64)| s.0 >= s.1;
    if empty(a) || empty(b) || a.1 <= b.0 || b.1 <= a.0 {
        Ok(())
    } else {
        Err(layout_err(what, a.0.max(b.0), a.1.min(b.1)))
    }
}

/// The parameter rules of the §1.1 table, reported as `InvalidArgument` (an API misuse, not a
/// hostile header).
fn check_params(p: &Params) -> Result<()> {
    let bad = |what: &'static str, found: u64, expected: u64| {
        Err(Error::value(
            ErrorCode::InvalidArgument,
            what,
            found,
            expected,
        ))
    };
    let range = |what: &'static str, v: u64, min: u64, max: u64| -> Result<()> {
        if v < min {
            bad(what, v, min)
        } else if v > max {
            bad(what, v, max)
        } else {
            Ok(())
        }
    };
    let pow2 = |what: &'static str, v: u64| -> Result<()> {
        if v.is_power_of_two() {
            Ok(())
        } else {
            bad(what, v, v.checked_next_power_of_two().unwrap_or(0))
        }
    };
    range(
        "params.worker_slots",
        p.worker_slots.into(),
        1,
        MAX_WORKER_SLOTS.into(),
    )?;
    range(
        "params.channel_slots",
        p.channel_slots.into(),
        0,
        MAX_CHANNEL_SLOTS.into(),
    )?;
    range(
        "params.inflight_max",
        p.inflight_max.into(),
        1,
        MAX_INFLIGHT.into(),
    )?;
    pow2("params.inflight_max", p.inflight_max.into())?;
    for (what, cap) in [
        ("params.request_ring_cap", p.request_ring_cap),
        ("params.response_ring_cap", p.response_ring_cap),
    ] {
        range(what, cap.into(), MIN_RING_CAP.into(), MAX_RING_CAP.into())?;
        pow2(what, cap.into())?;
    }
    if p.channel_slots > 0 {
        range(
            "params.channel_ring_cap",
            p.channel_ring_cap.into(),
            MIN_RING_CAP.into(),
            MAX_RING_CAP.into(),
        )?;
        pow2("params.channel_ring_cap", p.channel_ring_cap.into())?;
    }
    range(
        "params.max_message_len",
        p.max_message_len,
        1,
        MAX_MESSAGE_LEN,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Params {
        Params {
            worker_slots: 1,
            channel_slots: 1,
            inflight_max: 4,
            request_ring_cap: 4096,
            response_ring_cap: 4096,
            channel_ring_cap: 4096,
            max_message_len: 1 << 20,
        }
    }

    #[test]
    fn layout_1_places_sections_back_to_back() {
        let g = Geometry::compute(&small()).unwrap();
        assert_eq!(g.participants_off(), 0x140);
        // 2 entries of 128 bytes.
        assert_eq!(g.mailboxes_off(), 0x140 + 256);
        // align64(8 * 4) + 256 + 4096 + 4096.
        assert_eq!(g.mailbox_stride(), 64 + 256 + 8192);
        assert_eq!(g.channels_off(), 0x240 + 8512);
        assert_eq!(g.channel_stride(), 192 + 4096);
        assert_eq!(g.region_len() as u64, 0x240 + 8512 + 4288);
        assert_eq!(g.optional_features(), FEATURE_CHANNELS);
        assert_eq!(g.required_features(), 0);
    }

    #[test]
    fn no_channels_means_zero_channel_fields() {
        let g = Geometry::compute(&Params {
            channel_slots: 0,
            ..small()
        })
        .unwrap();
        assert_eq!(
            (g.channels_off(), g.channel_stride(), g.channel_ring_cap()),
            (0, 0, 0)
        );
        assert_eq!(g.optional_features(), 0);
        assert_eq!(
            g.region_len() as u64,
            g.mailboxes_off() + g.mailbox_stride()
        );
        assert!(g.channel_layout(0).is_none());
    }

    #[test]
    fn default_params_are_valid() {
        let g = Geometry::compute(&Params::default()).unwrap();
        assert_eq!(g.channel_slots(), 8);
        assert_eq!(g.request_ring_cap(), 256 << 10);
    }

    #[test]
    fn invalid_params_name_the_field() {
        let cases: [(Params, &str); 8] = [
            (
                Params {
                    worker_slots: 0,
                    ..small()
                },
                "params.worker_slots",
            ),
            (
                Params {
                    worker_slots: 1025,
                    ..small()
                },
                "params.worker_slots",
            ),
            (
                Params {
                    channel_slots: 4097,
                    ..small()
                },
                "params.channel_slots",
            ),
            (
                Params {
                    inflight_max: 3,
                    ..small()
                },
                "params.inflight_max",
            ),
            (
                Params {
                    request_ring_cap: 2048,
                    ..small()
                },
                "params.request_ring_cap",
            ),
            (
                Params {
                    response_ring_cap: 6000,
                    ..small()
                },
                "params.response_ring_cap",
            ),
            (
                Params {
                    channel_ring_cap: 0,
                    ..small()
                },
                "params.channel_ring_cap",
            ),
            (
                Params {
                    max_message_len: 0,
                    ..small()
                },
                "params.max_message_len",
            ),
        ];
        for (p, what) in cases {
            let e = Geometry::compute(&p).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{what}");
            assert_eq!(e.what, what);
        }
        // Without channel slots the channel capacity is ignored.
        assert!(Geometry::compute(&Params {
            channel_slots: 0,
            channel_ring_cap: 0,
            ..small()
        })
        .is_ok());
    }

    #[test]
    fn header_round_trips() {
        let g = Geometry::compute(&small()).unwrap();
        let h = g.to_header([7; 16], 99);
        let back = Geometry::from_header(&h, g.region_len()).unwrap();
        assert_eq!(back, g);
        assert_eq!(h.region_id, [7; 16]);
        assert_eq!(h.created_unix_ns.get(), 99);
    }

    #[test]
    fn spans_tile_a_mailbox_and_a_channel_slot() {
        let g = Geometry::compute(&small()).unwrap();
        let m = g.mailbox_layout(0).unwrap();
        assert_eq!(
            m.cancel,
            Span {
                offset: 0x240,
                len: 32
            }
        );
        assert_eq!(m.request_ctrl.offset, 0x240 + 64);
        assert_eq!(m.request_data.offset, m.request_ctrl.end());
        assert_eq!(m.response_ctrl.offset, m.request_data.end());
        assert_eq!(m.response_data.offset, m.response_ctrl.end());
        assert_eq!(
            m.response_data.end() as u64,
            g.mailboxes_off() + g.mailbox_stride()
        );
        assert!(g.mailbox_layout(1).is_none());
        let c = g.channel_layout(0).unwrap();
        assert_eq!(c.ctrl.end(), c.ring_ctrl.offset);
        assert_eq!(c.ring_ctrl.end(), c.ring_data.offset);
        assert_eq!(c.ring_data.end(), g.region_len());
        assert_eq!(g.participant_range(0), Some((0x140, 128)));
        assert_eq!(g.participant_range(1), Some((0x1C0, 128)));
        assert_eq!(g.participant_range(2), None);
    }

    #[test]
    fn largest_params_do_not_overflow() {
        let p = Params {
            worker_slots: MAX_WORKER_SLOTS,
            channel_slots: MAX_CHANNEL_SLOTS,
            inflight_max: MAX_INFLIGHT,
            request_ring_cap: MAX_RING_CAP,
            response_ring_cap: MAX_RING_CAP,
            channel_ring_cap: MAX_RING_CAP,
            max_message_len: MAX_MESSAGE_LEN,
        };
        let g = Geometry::compute(&p).unwrap();
        let last = g.channel_layout(MAX_CHANNEL_SLOTS - 1).unwrap();
        assert_eq!(last.ring_data.end(), g.region_len());
        let h = g.to_header([0; 16], 0);
        assert_eq!(Geometry::from_header(&h, g.region_len()).unwrap(), g);
    }
}
