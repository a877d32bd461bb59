//! Framing of the driver protocol (conformance/README.md §2): a u32 little-endian length, then
//! that many bytes of UTF-8 JSON.

use std::io::{self, Read, Write};

use serde_json::Value;

/// The largest frame body either side accepts.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The stream ended cleanly before a new frame.
    Closed,
    /// The stream failed or ended inside a frame.
    Io(io::Error),
    /// The length is 0 or above [`MAX_FRAME`].
    BadLength(u32),
    /// The body is not a JSON object in UTF-8.
    BadJson(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => write!(f, "stream closed"),
            FrameError::Io(e) => write!(f, "i/o error: {e}"),
            FrameError::BadLength(n) => write!(f, "frame length {n} outside 1..={MAX_FRAME}"),
            FrameError::BadJson(e) => write!(f, "frame is not a JSON object: {e}"),
        }
    }
}

/// Reads one frame. A body that is not a JSON object is `BadJson`; the stream stays usable.
pub fn read_frame(r: &mut impl Read) -> Result<Value, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let n = u32::from_le_bytes(len);
    let size = n as usize;
    if size == 0 || size > MAX_FRAME {
        return Err(FrameError::BadLength(n));
    }
    let mut body = vec![0u8; size];
    r.read_exact(&mut body).map_err(FrameError::Io)?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(FrameError::BadJson("not an object".into())),
        Err(e) => Err(FrameError::BadJson(e.to_string())),
    }
}

/// Writes one frame and flushes.
pub fn write_frame(w: &mut impl Write, v: &Value) -> io::Result<()> {
    let body = serde_json::to_vec(v)?;
    let n = u32::try_from(body.len())
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&n.to_le_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_round_trip_and_bad_frames_are_typed() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &json!({"id": 1, "cmd": "hello"})).unwrap();
        write_frame(&mut buf, &json!({"id": 2})).unwrap();
        let first = serde_json::to_vec(&json!({"id": 1, "cmd": "hello"})).unwrap();
        assert_eq!(&buf[..4], &(first.len() as u32).to_le_bytes());
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap()["cmd"], "hello");
        assert_eq!(read_frame(&mut r).unwrap()["id"], 2);
        assert!(matches!(read_frame(&mut r), Err(FrameError::Closed)));
        let mut zero = &[0u8, 0, 0, 0][..];
        assert!(matches!(
            read_frame(&mut zero),
            Err(FrameError::BadLength(0))
        ));
        let mut short = &[5u8, 0, 0, 0, b'{'][..];
        assert!(matches!(read_frame(&mut short), Err(FrameError::Io(_))));
        let mut arr = Vec::new();
        write_frame(&mut arr, &json!([1])).unwrap();
        assert!(matches!(
            read_frame(&mut &arr[..]),
            Err(FrameError::BadJson(_))
        ));
    }
}
