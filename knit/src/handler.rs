//! Worker-side functions: [`Handlers`] (a named set of handler closures), the [`Request`] a
//! handler receives and the [`HandlerError`] it may return (CALL-6).

use std::fmt;
use std::sync::Arc;

use knit_core::ErrorCode;

use crate::serve::writer::BufferSink;
use crate::serve::{Context, Responded, ResponseWriter};

/// A request as a handler sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'r> {
    /// The payload. For a one-record request these bytes are the request ring itself (zero
    /// copy): treat them as untrusted input, like any bytes from another process (RING-15).
    pub payload: &'r [u8],
    /// The payload's content type (spec/09 §9.2: 0 bytes, 1 UTF-8, 2 JSON, 3 CBOR, ...).
    pub content_type: u32,
}

impl<'r> Request<'r> {
    /// The payload as UTF-8 text, or `INVALID_ARGUMENT` when it is not.
    pub fn text(&self) -> Result<&'r str, HandlerError> {
        std::str::from_utf8(self.payload).map_err(|e| {
            HandlerError::new(
                ErrorCode::InvalidArgument as u32,
                format!("payload is not UTF-8: {e}"),
            )
        })
    }
}

/// A handler's failure, sent to the caller as the response `status` and a UTF-8 message
/// (CALL-6). The default code is `HANDLER_FAILED`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    /// The status to answer with: a registry code, or an application code 1000 to 65535
    /// (ERR-1). 0 is replaced by `HANDLER_FAILED`, since 0 means success.
    pub code: u32,
    /// What went wrong, for the caller.
    pub message: String,
}

impl HandlerError {
    /// A failure with `code` and `message`.
    pub fn new(code: u32, message: impl Into<String>) -> Self {
        let code = if code == 0 {
            ErrorCode::HandlerFailed as u32
        } else {
            code
        };
        HandlerError {
            code,
            message: message.into(),
        }
    }

    /// A `HANDLER_FAILED` failure with `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::HandlerFailed as u32, message)
    }
}

impl From<String> for HandlerError {
    fn from(message: String) -> Self {
        HandlerError::failed(message)
    }
}

impl From<&str> for HandlerError {
    fn from(message: &str) -> Self {
        HandlerError::failed(message)
    }
}

impl From<crate::Error> for HandlerError {
    fn from(e: crate::Error) -> Self {
        HandlerError::new(e.code() as u32, e.to_string())
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match ErrorCode::from_u32(self.code) {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => write!(f, "status {}: {}", self.code, self.message),
        }
    }
}

impl std::error::Error for HandlerError {}

/// What a handler returns: the result bytes, or a failure.
pub type HandlerResult = Result<Vec<u8>, HandlerError>;

/// A handler function, shared by every thread that serves it.
pub type HandlerFn = Arc<dyn Fn(&Context<'_>, Request<'_>) -> HandlerResult + Send + Sync>;

/// A handler that writes its result through a [`ResponseWriter`] (in place in the response
/// ring when it fits one record), shared by every thread that serves it.
pub type InPlaceFn = Arc<
    dyn Fn(&Context<'_>, Request<'_>, ResponseWriter<'_>) -> Result<Responded, HandlerError>
        + Send
        + Sync,
>;

/// How the serve loop runs a handler.
#[derive(Clone)]
pub(crate) enum HandlerKind<'h> {
    /// Returns its result as bytes, which are copied into the ring.
    Bytes(&'h HandlerFn),
    /// Like `Bytes`, on a private copy of the request (so it may open channels).
    Streaming(&'h HandlerFn),
    /// Writes its result through a [`ResponseWriter`].
    InPlace(&'h InPlaceFn),
}

/// A set of named handlers; cheap to clone. Function ids are the handlers' positions plus 1,
/// in the order they were added; names are unique (FN-1).
#[derive(Clone, Default)]
pub struct Handlers {
    list: Vec<Entry>,
}

/// One named handler.
#[derive(Clone)]
struct Entry {
    name: String,
    /// The handler; for an in-place one, an adapter that runs it into a private buffer.
    f: HandlerFn,
    /// Gets a private copy of the request, so that it may open channels while it runs.
    streaming: bool,
    /// The in-place form, which the serve loop runs with the response ring.
    in_place: Option<InPlaceFn>,
}

impl Handlers {
    /// An empty set.
    pub fn new() -> Self {
        Handlers::default()
    }

    /// Adds (or replaces) the handler of function `name`. Its request payload is read in
    /// place from the ring when it is one record (zero copy).
    #[must_use]
    pub fn handle<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(&Context<'_>, Request<'_>) -> HandlerResult + Send + Sync + 'static,
    {
        self.insert(name, Arc::new(f), false);
        self
    }

    /// Adds (or replaces) the handler of function `name`, which may open a channel to the host
    /// while it runs ([`Context::open_channel_to_host`]): its request payload is copied out of
    /// the ring first, so that the worker can write the channel's announcement meanwhile.
    #[must_use]
    pub fn handle_streaming<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(&Context<'_>, Request<'_>) -> HandlerResult + Send + Sync + 'static,
    {
        self.insert(name, Arc::new(f), true);
        self
    }

    /// Adds (or replaces) the handler of function `name`, which answers through a
    /// [`ResponseWriter`]: its result is written straight into the response ring when it fits
    /// one record (zero copy, spec/03 §3.3), and copied from a private buffer otherwise. Its
    /// request is read in place too, so a one-record call copies nothing on the worker side.
    ///
    /// ```no_run
    /// let handlers = knit::Handlers::new().handle_in_place("reverse", |_ctx, req, out| {
    ///     let input = req.payload;
    ///     out.write_with(input.len(), |buf| {
    ///         for (dst, src) in buf.iter_mut().zip(input.iter().rev()) {
    ///             *dst = *src;
    ///         }
    ///         input.len()
    ///     })
    /// });
    /// ```
    #[must_use]
    pub fn handle_in_place<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(&Context<'_>, Request<'_>, ResponseWriter<'_>) -> Result<Responded, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        self.insert_in_place(name, Arc::new(f));
        self
    }

    /// Adds (or replaces) the handler of function `name`; see [`Handlers::handle_streaming`]
    /// for `streaming`.
    pub fn insert(&mut self, name: &str, f: HandlerFn, streaming: bool) {
        self.put(Entry {
            name: name.to_owned(),
            f,
            streaming,
            in_place: None,
        });
    }

    /// Adds (or replaces) the in-place handler of function `name` (see
    /// [`Handlers::handle_in_place`]).
    pub fn insert_in_place(&mut self, name: &str, f: InPlaceFn) {
        let run = InPlaceFn::clone(&f);
        // What `get` hands out: the handler run into a private buffer, for callers outside a
        // serve loop.
        let adapter: HandlerFn = Arc::new(move |ctx: &Context<'_>, req: Request<'_>| {
            let mut sink = BufferSink { result: None };
            let _responded = run(ctx, req, ResponseWriter::new(&mut sink, ctx))?;
            sink.result.ok_or_else(|| {
                HandlerError::failed("the handler returned without writing its result")
            })
        });
        self.put(Entry {
            name: name.to_owned(),
            f: adapter,
            streaming: false,
            in_place: Some(f),
        });
    }

    fn put(&mut self, entry: Entry) {
        match self.list.iter_mut().find(|e| e.name == entry.name) {
            Some(e) => *e = entry,
            None => self.list.push(entry),
        }
    }

    /// Adds every handler of `other`, replacing those of the same name.
    pub fn extend(&mut self, other: &Handlers) {
        for e in &other.list {
            self.put(e.clone());
        }
    }

    /// The `(id, name)` pairs of the function table (spec/05 §5.3).
    pub fn table(&self) -> impl Iterator<Item = (u32, &str)> {
        self.list
            .iter()
            .zip(1u32..)
            .map(|(e, id)| (id, e.name.as_str()))
    }

    fn entry(&self, id: u32) -> Option<&Entry> {
        let index = usize::try_from(id.checked_sub(1)?).ok()?;
        self.list.get(index)
    }

    /// The handler of function `id`. For an in-place handler, a form that runs it into a
    /// private buffer and returns the bytes.
    pub fn get(&self, id: u32) -> Option<&HandlerFn> {
        self.entry(id).map(|e| &e.f)
    }

    /// How the serve loop runs function `id`.
    pub(crate) fn kind(&self, id: u32) -> Option<HandlerKind<'_>> {
        self.entry(id).map(|e| match (&e.in_place, e.streaming) {
            (Some(f), _) => HandlerKind::InPlace(f),
            (None, true) => HandlerKind::Streaming(&e.f),
            (None, false) => HandlerKind::Bytes(&e.f),
        })
    }

    /// True when function `id` was added with [`Handlers::handle_in_place`].
    pub fn is_in_place(&self, id: u32) -> bool {
        self.entry(id).is_some_and(|e| e.in_place.is_some())
    }

    /// The name of function `id`.
    pub fn name(&self, id: u32) -> Option<&str> {
        self.entry(id).map(|e| e.name.as_str())
    }

    /// True when function `id` was added with [`Handlers::handle_streaming`].
    pub fn is_streaming(&self, id: u32) -> bool {
        self.entry(id).is_some_and(|e| e.streaming)
    }

    /// Number of handlers.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there is no handler.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|e| &e.name))
            .finish()
    }
}
