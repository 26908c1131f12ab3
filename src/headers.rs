//! Reading headers out of a captured HTTP/1.1-form response head: for checks, extractions,
//! pagination and registry flows — not the hot path, which parses heads in place (engine/http1.rs).
//! Low in the pipeline, beside `sample`, so `plan`, `scenario` and `engine` all use it without
//! reaching into each other.

/// Response heads with more headers than this are refused as malformed.
pub const MAX_HEADERS: usize = 96;

/// The first value of header `name` in a response head.
pub fn header_value<'h>(head: &'h [u8], name: &str) -> Option<&'h str> {
    header_values(head, name).first().copied()
}

/// The values of a header in a captured response head (case-insensitive name), in order.
pub fn header_values<'h>(head: &'h [u8], name: &str) -> Vec<&'h str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    if resp.parse(head).is_err() {
        return Vec::new();
    }
    resp.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .collect()
}
