//! Matching replies against a step's `expect` list (conformance/README.md §5).

use serde_json::Value;

use crate::payload::{digest, payload};

/// How a matched expectation scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Score {
    /// A SHOULD not followed, or a legal but weaker behaviour.
    NonStrict,
    /// An observation, neither right nor wrong.
    Info,
    /// As the spec asks.
    Pass,
}

impl Score {
    fn parse(v: Option<&Value>) -> Score {
        match v.and_then(Value::as_str) {
            Some("NON-STRICT") => Score::NonStrict,
            Some("INFO") => Score::Info,
            _ => Score::Pass,
        }
    }
}

/// The status an expectation implies: `verdict` means an `ok` reply of `validate`; `class`
/// alone means an `error` reply; otherwise `status` or `ok`.
fn implied_status(e: &Value) -> &str {
    if let Some(s) = e.get("status").and_then(Value::as_str) {
        return s;
    }
    if e.get("verdict").is_some() {
        return "ok";
    }
    if e.get("class").is_some() {
        return "error";
    }
    "ok"
}

/// The first expectation `reply` matches, with its score. An empty list accepts any `ok`.
pub fn first_match(expect: &[Value], reply: &Value) -> Option<Score> {
    if expect.is_empty() {
        return (reply.get("status").and_then(Value::as_str) == Some("ok")).then_some(Score::Pass);
    }
    expect.iter().find_map(|e| {
        if reply.get("status").and_then(Value::as_str) != Some(implied_status(e)) {
            return None;
        }
        let Value::Object(map) = e else { return None };
        let ok = map
            .iter()
            .filter(|(k, _)| k.as_str() != "score" && k.as_str() != "status")
            .all(|(k, want)| reply.get(k).is_some_and(|got| value_matches(want, got)));
        ok.then(|| Score::parse(e.get("score")))
    })
}

/// Whether `got` satisfies `want`: objects by subset, arrays element-wise with equal length,
/// integers whatever their encoding (number or decimal string), a `{seed, len}` object against
/// a digest string, `{any_of = [...]}` against any alternative.
pub fn value_matches(want: &Value, got: &Value) -> bool {
    if let Some(alts) = want.get("any_of").and_then(Value::as_array) {
        return alts.iter().any(|a| value_matches(a, got));
    }
    if let Some(max) = want.get("max").and_then(as_u64) {
        return as_u64(got).is_some_and(|g| g <= max);
    }
    if want.get("nonempty").is_some() {
        return got.as_str().is_some_and(|s| !s.is_empty())
            || got.as_array().is_some_and(|a| !a.is_empty());
    }
    if let Some(batch) = want.get("echo_batch") {
        return got.as_str() == Some(crate::live::expected_batch(batch).as_str());
    }
    if let (Some(seed), Some(len), Value::String(d)) = (want.get("seed"), want.get("len"), got) {
        let (Some(seed), Some(len)) = (as_u64(seed), as_u64(len)) else {
            return false;
        };
        return usize::try_from(len).is_ok_and(|len| &digest(&payload(seed, len)) == d);
    }
    match (want, got) {
        (Value::Object(w), Value::Object(_)) => w
            .iter()
            .all(|(k, wv)| got.get(k).is_some_and(|gv| value_matches(wv, gv))),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| value_matches(a, b))
        }
        _ => match (as_u64(want), as_u64(got)) {
            (Some(a), Some(b)) => a == b,
            _ => want == got,
        },
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verdicts_classes_and_scores_match() {
        let reply = json!({"id": 1, "status": "ok", "verdict": "invalid", "class": "BAD_MAGIC"});
        assert_eq!(
            first_match(
                &[json!({"verdict": "invalid", "class": "BAD_MAGIC"})],
                &reply
            ),
            Some(Score::Pass)
        );
        assert_eq!(
            first_match(
                &[json!({"verdict": "invalid", "class": "BAD_LAYOUT"})],
                &reply
            ),
            None
        );
        let err = json!({"id": 2, "status": "error", "class": "PEER_DIED"});
        assert_eq!(
            first_match(&[json!({"class": "PEER_DIED"})], &err),
            Some(Score::Pass)
        );
        assert_eq!(
            first_match(
                &[
                    json!({"class": "X"}),
                    json!({"class": "PEER_DIED", "score": "NON-STRICT"})
                ],
                &err
            ),
            Some(Score::NonStrict)
        );
        assert_eq!(first_match(&[], &err), None);
        assert_eq!(first_match(&[], &reply), Some(Score::Pass));
    }

    #[test]
    fn integers_digests_and_lists_match_structurally() {
        assert!(value_matches(&json!(5), &json!("5")));
        assert!(!value_matches(&json!(5), &json!("6")));
        let d = digest(&payload(3, 10));
        assert!(value_matches(&json!({"seed": 3, "len": 10}), &json!(d)));
        assert!(!value_matches(&json!({"seed": 3, "len": 11}), &json!(d)));
        assert!(value_matches(
            &json!([{"type": "END"}]),
            &json!([{"type": "END", "x": 1}])
        ));
        assert!(!value_matches(&json!([{"type": "END"}]), &json!([])));
        assert!(value_matches(&json!({"any_of": ["A", "B"]}), &json!("B")));
        assert!(value_matches(&json!({"max": 10}), &json!(10)));
        assert!(!value_matches(&json!({"max": 10}), &json!(11)));
        assert!(value_matches(&json!({"nonempty": true}), &json!("x")));
        assert!(!value_matches(&json!({"nonempty": true}), &json!("")));
    }
}
