//! Typed calls over JSON (content type 2) and CBOR (content type 3), feature `serde`.

use knit::{HandlerError, Handlers, Pool};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Sum {
    values: Vec<i64>,
    label: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Total {
    total: i64,
    label: String,
}

// The typed handler signature takes the decoded request by value.
#[allow(clippy::needless_pass_by_value)]
fn add(_ctx: &knit::Context<'_>, s: Sum) -> Result<Total, HandlerError> {
    if s.values.is_empty() {
        return Err(HandlerError::failed("nothing to add"));
    }
    Ok(Total {
        total: s.values.iter().sum(),
        label: s.label.to_uppercase(),
    })
}

#[test]
fn json_and_cbor_round_trip_with_typed_errors() {
    let handlers = Handlers::new()
        .handle_json("add_json", add)
        .handle_cbor("add_cbor", add)
        .handle("raw", |ctx, req| {
            // The typed layer tags the request with its content type (spec/09 §9.2).
            Ok(vec![
                u8::try_from(req.content_type).unwrap_or(255),
                u8::from(ctx.request_id() > 0),
            ])
        });
    let pool = Pool::builder().threads(handlers).build().unwrap();
    let req = Sum {
        values: vec![1, 2, 39],
        label: "answer".into(),
    };
    let want = Total {
        total: 42,
        label: "ANSWER".into(),
    };
    assert_eq!(pool.call_json::<_, Total>("add_json", &req).unwrap(), want);
    assert_eq!(pool.call_cbor::<_, Total>("add_cbor", &req).unwrap(), want);
    // A handler error crosses as HANDLER_FAILED.
    let e = pool
        .call_json::<_, Total>(
            "add_json",
            &Sum {
                values: vec![],
                label: String::new(),
            },
        )
        .unwrap_err();
    assert!(
        e.is_handler_failed() && e.message == "nothing to add",
        "{e}"
    );
    // A request of the wrong shape is refused by the worker's decoder.
    let e = pool
        .call_json::<_, Total>("add_json", &"not a Sum")
        .unwrap_err();
    assert_eq!(e.code(), Some(knit_core::ErrorCode::InvalidArgument), "{e}");
    // CBOR sent to a JSON handler is not JSON.
    let e = pool.call_cbor::<_, Total>("add_json", &req).unwrap_err();
    assert_eq!(e.code(), Some(knit_core::ErrorCode::InvalidArgument), "{e}");
    let r = pool
        .call(
            "raw",
            knit::Payload::new(&b"{}"[..], knit::call::CONTENT_JSON),
        )
        .unwrap();
    assert_eq!(r.bytes(), [2, 1]);
}
