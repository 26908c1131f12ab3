//! A gRPC call as a step: pure data. The message is encoded once, when the plan is made
//! (`scenario::grpc` turns JSON into protobuf with the method's descriptor), so a call is a
//! static HTTP/2 POST the engine sends like any other request, and reads gRPC's status and
//! messages from (`engine::grpc`).

use std::time::Duration;

use bytes::Bytes;

use super::RequestSpec;

/// The tag a server stream's messages are timed under: `STEP/message`.
pub const MESSAGE_PHASE: &str = "message";

/// What the engine needs to know of a gRPC step beyond its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// `package.Service/Method`.
    pub method: String,
    /// The server answers with a stream of messages (each timed under `STEP/message`).
    pub server_streaming: bool,
    /// Sent as `grpc-timeout`: the server gives up (DEADLINE_EXCEEDED) after it.
    pub deadline: Option<Duration>,
    /// A templated message: the step's body template renders JSON each iteration, encoded as this
    /// message type before it is sent. `None`: the message was encoded once, in the request.
    pub input: Option<prost_reflect::MessageDescriptor>,
}

/// A message in gRPC's length-prefixed framing: uncompressed flag, 32-bit big-endian length, bytes.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    put_prefix(&mut out, message.len());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// `msg` encoded and framed into `out` (cleared first), without an intermediate buffer.
pub fn frame_into(msg: &impl prost::Message, out: &mut Vec<u8>) {
    out.clear();
    put_prefix(out, msg.encoded_len());
    msg.encode_raw(out);
}

/// gRPC's 5-byte prefix of an uncompressed message of `len` bytes.
fn put_prefix(out: &mut Vec<u8>, len: usize) {
    out.push(0);
    // invariant: messages come from JSON bodies bounded far below 4 GiB (MAX_BODY_FILE).
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

/// `json` (protobuf's JSON mapping) read as a message of type `input`; the error says what is not
/// `a valid TYPE`. Shared by the plan (static messages, encoded once) and the engine (templated
/// ones, per call).
pub fn message(
    input: &prost_reflect::MessageDescriptor,
    json: &[u8],
) -> Result<prost_reflect::DynamicMessage, String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    prost_reflect::DynamicMessage::deserialize(input.clone(), &mut de)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| format!("not a valid {}: {e}", input.full_name()))
}

/// A `grpc-timeout` value: at most 8 digits and a unit, the finest unit that fits, rounded up (a
/// deadline is never made shorter than asked).
pub fn timeout_value(d: Duration) -> String {
    let ns = d.as_nanos().max(1);
    for (unit, per) in [
        ("n", 1u128),
        ("u", 1_000),
        ("m", 1_000_000),
        ("S", 1_000_000_000),
        ("M", 60_000_000_000),
        ("H", 3_600_000_000_000),
    ] {
        let v = ns.div_ceil(per);
        if v <= 99_999_999 {
            return format!("{v}{unit}");
        }
    }
    "99999999H".into()
}

/// The HTTP/2 request of a call: `POST /package.Service/Method` with the framed message, gRPC's
/// headers and the user's metadata (`-H`), named `name`.
pub fn request(
    name: &str,
    call: &Call,
    message: &[u8],
    metadata: &[(String, String)],
) -> RequestSpec {
    let mut headers = vec![
        ("content-type".to_string(), "application/grpc".to_string()),
        ("te".to_string(), "trailers".to_string()),
    ];
    if let Some(d) = call.deadline {
        headers.push(("grpc-timeout".into(), timeout_value(d)));
    }
    headers.extend(
        metadata
            .iter()
            .filter(|(n, _)| {
                !["content-type", "te", "grpc-timeout"]
                    .iter()
                    .any(|r| n.eq_ignore_ascii_case(r))
            })
            .cloned(),
    );
    RequestSpec {
        name: name.into(),
        method: "POST".into(),
        path: format!("/{}", call.method),
        headers,
        body: frame(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_fit_in_eight_digits_and_never_shrink() {
        assert_eq!(timeout_value(Duration::from_millis(100)), "100000u");
        assert_eq!(timeout_value(Duration::from_secs(30)), "30000000u");
        assert_eq!(timeout_value(Duration::from_secs(3600)), "3600000m");
        assert_eq!(timeout_value(Duration::from_nanos(1)), "1n");
        assert_eq!(timeout_value(Duration::from_secs(200_000)), "200000S");
        assert_eq!(timeout_value(Duration::from_secs(u64::MAX)), "99999999H");
    }

    #[test]
    fn frames_are_length_prefixed() {
        assert_eq!(&frame(b"ab")[..], &[0, 0, 0, 0, 2, b'a', b'b']);
        assert_eq!(&frame(b"")[..], &[0, 0, 0, 0, 0]);
    }
}
