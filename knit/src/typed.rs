//! Typed calls (feature `serde`): values encoded as JSON (content type 2) or CBOR (content
//! type 3, with `ciborium`) on both sides. The transport never looks inside (CT-1); only the
//! endpoints encode and decode.

use serde::de::DeserializeOwned;
use serde::Serialize;

use knit_core::ErrorCode;

use crate::call::{CallError, Payload, CONTENT_CBOR, CONTENT_JSON};
use crate::handler::{HandlerError, Handlers};
use crate::pool::Pool;
use crate::serve::Worker;

/// A codec of the typed layer.
trait Codec {
    const CONTENT_TYPE: u32;
    const NAME: &'static str;
    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String>;
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String>;
}

struct Json;

impl Codec for Json {
    const CONTENT_TYPE: u32 = CONTENT_JSON;
    const NAME: &'static str = "JSON";
    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

struct Cbor;

impl Codec for Cbor {
    const CONTENT_TYPE: u32 = CONTENT_CBOR;
    const NAME: &'static str = "CBOR";
    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }
}

fn call_typed<C: Codec, Req: Serialize, Resp: DeserializeOwned>(
    pool: &Pool,
    name: &str,
    request: &Req,
) -> Result<Resp, CallError> {
    let bytes = C::encode(request).map_err(|e| {
        CallError::new(
            ErrorCode::InvalidArgument,
            format!("cannot encode the request as {}: {e}", C::NAME),
        )
    })?;
    let response = pool.call(name, Payload::new(bytes, C::CONTENT_TYPE))?;
    C::decode(response.bytes()).map_err(|e| {
        CallError::new(
            ErrorCode::InvalidArgument,
            format!(
                "the response of `{name}` is not the expected {}: {e}",
                C::NAME
            ),
        )
    })
}

fn typed_handler<C, Req, Resp, F>(
    f: F,
) -> impl Fn(&crate::serve::Context<'_>, crate::handler::Request<'_>) -> crate::handler::HandlerResult
       + Send
       + Sync
       + 'static
where
    C: Codec,
    Req: DeserializeOwned,
    Resp: Serialize,
    F: Fn(&crate::serve::Context<'_>, Req) -> Result<Resp, HandlerError> + Send + Sync + 'static,
{
    move |ctx, req| {
        // The bytes may be the ring itself: the decoder copies what it keeps (RING-15).
        let value: Req = C::decode(req.payload).map_err(|e| {
            HandlerError::new(
                ErrorCode::InvalidArgument as u32,
                format!("the request is not the expected {}: {e}", C::NAME),
            )
        })?;
        let out = f(ctx, value)?;
        ctx.set_content_type(C::CONTENT_TYPE);
        C::encode(&out).map_err(|e| {
            HandlerError::failed(format!("cannot encode the result as {}: {e}", C::NAME))
        })
    }
}

impl Pool {
    /// Calls `name` with `request` encoded as JSON (content type 2) and decodes the JSON result.
    pub fn call_json<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        name: &str,
        request: &Req,
    ) -> Result<Resp, CallError> {
        call_typed::<Json, Req, Resp>(self, name, request)
    }

    /// Calls `name` with `request` encoded as CBOR (content type 3) and decodes the CBOR result.
    pub fn call_cbor<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        name: &str,
        request: &Req,
    ) -> Result<Resp, CallError> {
        call_typed::<Cbor, Req, Resp>(self, name, request)
    }
}

impl Handlers {
    /// Adds a handler that takes and returns JSON values.
    #[must_use]
    pub fn handle_json<Req, Resp, F>(self, name: &str, f: F) -> Self
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        F: Fn(&crate::serve::Context<'_>, Req) -> Result<Resp, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        self.handle(name, typed_handler::<Json, Req, Resp, F>(f))
    }

    /// Adds a handler that takes and returns CBOR values.
    #[must_use]
    pub fn handle_cbor<Req, Resp, F>(self, name: &str, f: F) -> Self
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        F: Fn(&crate::serve::Context<'_>, Req) -> Result<Resp, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        self.handle(name, typed_handler::<Cbor, Req, Resp, F>(f))
    }
}

impl Worker {
    /// Adds a handler that takes and returns JSON values.
    #[must_use]
    pub fn handle_json<Req, Resp, F>(self, name: &str, f: F) -> Self
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        F: Fn(&crate::serve::Context<'_>, Req) -> Result<Resp, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        self.handle(name, typed_handler::<Json, Req, Resp, F>(f))
    }

    /// Adds a handler that takes and returns CBOR values.
    #[must_use]
    pub fn handle_cbor<Req, Resp, F>(self, name: &str, f: F) -> Self
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        F: Fn(&crate::serve::Context<'_>, Req) -> Result<Resp, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        self.handle(name, typed_handler::<Cbor, Req, Resp, F>(f))
    }
}
