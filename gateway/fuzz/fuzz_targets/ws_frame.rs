//! Client frames of `/ws/customer` and `/ws/agent`: `parse_frame` never panics, its error
//! message is one of a fixed set (it never quotes the frame), the `ref` it keeps is at most
//! 64 bytes, and the reply the server sends carries that `ref` back unchanged. Chat text and
//! client ids go through the same checks the customer and agent handlers apply.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run ws_frame -- -max_total_time=60` (from `gateway/`)

#![no_main]

use deskgate::protocol::{
    parse_frame, ClientFrame, ClientId, ErrorCode, MessageText, ServerFrame, CLIENT_TYPES,
    MAX_ID_BYTES, MAX_TEXT_CHARS,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const FIXED: &[&str] = &[
    "frame is not valid JSON",
    "frame must be a JSON object",
    "ref must be a string of at most 64 bytes",
    "frame has no string field `type`",
    "unknown frame type",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_frame(text) {
        Err(e) => {
            assert!(
                fixed_message(&e.message),
                "message quotes input: {:?}",
                e.message
            );
            assert!(e.reference.as_ref().is_none_or(|r| r.len() <= MAX_ID_BYTES));
            let reply = ServerFrame::Error {
                reference: e.reference.as_deref(),
                code: e.code,
                message: &e.message,
            }
            .encode();
            let v = reparse(&reply, "error", e.reference.as_deref());
            assert_eq!(v["code"].as_str(), Some(e.code.as_str()));
        }
        Ok(inbound) => {
            let reference = inbound.reference.as_deref();
            assert!(reference.is_none_or(|r| r.len() <= MAX_ID_BYTES));
            match inbound.frame {
                ClientFrame::Send {
                    client_id, text, ..
                }
                | ClientFrame::Note {
                    client_id, text, ..
                } => {
                    check_send(client_id, text, reference);
                }
                ClientFrame::Ping => {
                    let pong = ServerFrame::Pong { reference }.encode();
                    reparse(&pong, "pong", reference);
                }
                _ => {}
            }
        }
    }
});

/// What the handlers do with a `send` or `note` before the desk sees it.
fn check_send(client_id: String, text: String, reference: Option<&str>) {
    match ClientId::parse(client_id.clone()) {
        Ok(id) => {
            assert_eq!(id.as_str(), client_id);
            assert!(!client_id.is_empty() && client_id.len() <= MAX_ID_BYTES);
            assert!(!client_id.chars().any(char::is_control));
        }
        Err(why) => error_reply(why, ErrorCode::InvalidFrame, reference),
    }
    match MessageText::parse(text.clone()) {
        Ok(t) => {
            assert_eq!(t.as_str(), text);
            assert!(!text.trim().is_empty() && text.chars().count() <= MAX_TEXT_CHARS);
        }
        Err(why) => error_reply(why, ErrorCode::InvalidText, reference),
    }
}

fn error_reply(why: &str, code: ErrorCode, reference: Option<&str>) {
    assert!(why.len() <= 80);
    let reply = ServerFrame::Error {
        reference,
        code,
        message: why,
    }
    .encode();
    let v = reparse(&reply, "error", reference);
    assert_eq!(v["message"].as_str(), Some(why));
}

/// The server's reply is JSON of its type, with the client's `ref` as it was.
fn reparse(frame: &str, kind: &str, reference: Option<&str>) -> Value {
    let v: Value = serde_json::from_str(frame).expect("a server frame is JSON");
    assert_eq!(v["type"].as_str(), Some(kind));
    assert_eq!(v.get("ref").and_then(Value::as_str), reference);
    v
}

/// One of the fixed messages, or `<type>: missing field `<name>``, or `<type>: a field has
/// the wrong type or value`, for a known type.
fn fixed_message(m: &str) -> bool {
    if FIXED.contains(&m) {
        return true;
    }
    let Some((kind, rest)) = m.split_once(": ") else {
        return false;
    };
    if !CLIENT_TYPES.contains(&kind) {
        return false;
    }
    if rest == "a field has the wrong type or value" {
        return true;
    }
    rest.strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
        .is_some_and(|name| {
            !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
}
