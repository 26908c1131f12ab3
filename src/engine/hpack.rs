//! HPACK (RFC 7541), as much as an HTTP/2 client needs.
//!
//! - **Requests** are encoded without the dynamic table: every field is indexed from the static table
//!   or a literal "without indexing". The encoder then has no state, so a step's header block is
//!   encoded once before the run and the same bytes go out on every stream of every connection.
//! - **Responses** are decoded in full, dynamic table and Huffman strings included: the server's
//!   encoder may use both, and every block must be decoded, read or not, to keep the table in step.
//!
//! The decoder reuses its buffers and evicted table entries, so decoding does not allocate once the
//! table has filled.

use std::collections::VecDeque;

/// The static table (RFC 7541 Appendix A); index 1 is the first entry.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// The dynamic table size both ends start with, and the most we allow the server to set (we never
/// send SETTINGS_HEADER_TABLE_SIZE, so it stays the protocol's default).
pub const TABLE_SIZE: usize = 4096;

/// A header block the decoder cannot read: a connection error (COMPRESSION_ERROR).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad HPACK header block: {0}")]
pub struct DecodeError(pub &'static str);

// ---------------------------------------------------------------------------------------------
// Encoding requests

/// Appends `value` as an HPACK integer with an `n`-bit prefix; `first` holds the bits above it.
fn put_int(out: &mut Vec<u8>, first: u8, n: u32, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// Appends a string literal, not Huffman-coded: requests are encoded once per step, and the few
/// bytes Huffman would save are the server's to decode, not ours to spend.
fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Appends one field: fully indexed when the static table has it with this value, else a literal
/// without indexing that names the static entry when there is one. `name` is lower case.
pub fn put_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let mut name_index = 0;
    for (i, (n, v)) in STATIC.iter().enumerate() {
        if n.as_bytes() == name {
            if v.as_bytes() == value {
                put_int(out, 0x80, 7, i + 1);
                return;
            }
            if name_index == 0 {
                name_index = i + 1;
            }
        }
    }
    put_int(out, 0x00, 4, name_index);
    if name_index == 0 {
        put_str(out, name);
    }
    put_str(out, value);
}

// ---------------------------------------------------------------------------------------------
// Huffman (RFC 7541 Appendix B)

/// The length in bits of each symbol's code (256 is EOS). The code is canonical — codes of one
/// length are consecutive in symbol order, and each length's first code follows the previous
/// length's last — so the lengths alone define it.
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32 ' '
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48 '0'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64 '@'
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80 'P'
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96 '`'
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112 'p'
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240
    30, // 256 EOS
];
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;
const EOS: u16 = 256;

/// The canonical code in decoding form: per length, its first code, how many codes it has, and
/// where its symbols start in `symbols` (sorted by length, then symbol).
struct Canonical {
    first: [u32; MAX_LEN + 1],
    count: [u32; MAX_LEN + 1],
    offset: [u16; MAX_LEN + 1],
    symbols: [u16; 257],
}

const fn canonical() -> Canonical {
    let mut c = Canonical {
        first: [0; MAX_LEN + 1],
        count: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        symbols: [0; 257],
    };
    let mut s = 0;
    while s < 257 {
        c.count[CODE_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut code = 0u32;
    let mut at = 0u16;
    let mut len = 1;
    while len <= MAX_LEN {
        c.first[len] = code;
        c.offset[len] = at;
        let mut s = 0;
        while s < 257 {
            if CODE_LENGTHS[s] as usize == len {
                c.symbols[at as usize] = s as u16;
                at += 1;
            }
            s += 1;
        }
        code = (code + c.count[len]) << 1;
        len += 1;
    }
    c
}

static HUFFMAN: Canonical = canonical();

/// Appends the Huffman-decoded `data` to `out`.
fn huffman_decode(data: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let h = &HUFFMAN;
    // Undecoded bits, the newest in the low end; `bits` of them are valid (at most 7 + 30).
    let mut acc: u64 = 0;
    let mut bits = 0usize;
    for &byte in data {
        acc = (acc << 8) | u64::from(byte);
        bits += 8;
        'symbols: while bits >= MIN_LEN {
            let mut len = MIN_LEN;
            while len <= bits.min(MAX_LEN) {
                let code = ((acc >> (bits - len)) & ((1 << len) - 1)) as u32;
                // Canonical: a prefix not taken by a shorter code is at least this length's first
                // code, so being below its end is enough.
                if code < h.first[len] + h.count[len] {
                    let sym = h.symbols[(h.offset[len] as u32 + code - h.first[len]) as usize];
                    if sym == EOS {
                        return Err(DecodeError("EOS inside a Huffman string"));
                    }
                    out.push(sym as u8);
                    bits -= len;
                    continue 'symbols;
                }
                len += 1;
            }
            if bits >= MAX_LEN {
                return Err(DecodeError("invalid Huffman code"));
            }
            break;
        }
    }
    // What is left must be padding: fewer than 8 bits, all ones (the start of EOS).
    let mask = (1u64 << bits) - 1;
    if bits > 7 || acc & mask != mask {
        return Err(DecodeError("bad Huffman padding"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Decoding responses

/// One direction's decoding state: the dynamic table, newest entry first.
pub struct Decoder {
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    /// The table's size as RFC 7541 §4.1 counts it (each entry: name + value + 32).
    size: usize,
    /// The largest size the encoder chose (at most [`TABLE_SIZE`]).
    max_size: usize,
    /// Evicted entries, kept for their buffers.
    spare: Vec<(Vec<u8>, Vec<u8>)>,
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: TABLE_SIZE,
            spare: Vec::new(),
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }
}

/// Reads an integer with an `n`-bit prefix from the front of `block`.
fn take_int(block: &mut &[u8], n: u32) -> Result<usize, DecodeError> {
    let (&first, rest) = block.split_first().ok_or(DecodeError("truncated"))?;
    *block = rest;
    let max = (1usize << n) - 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let (&b, rest) = block
            .split_first()
            .ok_or(DecodeError("truncated integer"))?;
        *block = rest;
        if shift > 21 {
            return Err(DecodeError("integer too large"));
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// Reads a string literal from the front of `block`: borrowed when plain, decoded into `buf` when
/// Huffman-coded.
fn take_str<'b, 'a: 'b>(
    block: &mut &'a [u8],
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8], DecodeError> {
    let huffman = block.first().is_some_and(|b| b & 0x80 != 0);
    let len = take_int(block, 7)?;
    if len > block.len() {
        return Err(DecodeError("truncated string"));
    }
    let (s, rest) = block.split_at(len);
    *block = rest;
    if !huffman {
        return Ok(s);
    }
    buf.clear();
    huffman_decode(s, buf)?;
    Ok(buf)
}

impl Decoder {
    /// Decodes a whole header block, calling `field` with each name and value in order.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let mut at_start = true;
        while let Some(&b) = block.first() {
            if b & 0x80 != 0 {
                // Indexed field.
                let i = take_int(&mut block, 7)?;
                let (n, v) = Self::lookup(&self.table, i)?;
                field(n, v);
            } else if b & 0xe0 == 0x20 {
                // Dynamic table size update: only at the start of a block (RFC 7541 §4.2).
                if !at_start {
                    return Err(DecodeError("table size update after a field"));
                }
                let size = take_int(&mut block, 5)?;
                if size > TABLE_SIZE {
                    return Err(DecodeError("table size above SETTINGS_HEADER_TABLE_SIZE"));
                }
                self.max_size = size;
                self.evict_to(size);
                continue;
            } else {
                // A literal, added to the table (01) or not (0000, and 0001: never indexed).
                let index = b & 0xc0 == 0x40;
                let name_index = take_int(&mut block, if index { 6 } else { 4 })?;
                let name = if name_index == 0 {
                    take_str(&mut block, &mut self.name_buf)?
                } else {
                    Self::lookup(&self.table, name_index)?.0
                };
                let value = take_str(&mut block, &mut self.value_buf)?;
                field(name, value);
                if index {
                    let mut e = self.spare.pop().unwrap_or_default();
                    e.0.clear();
                    e.0.extend_from_slice(name);
                    e.1.clear();
                    e.1.extend_from_slice(value);
                    self.insert(e);
                }
            }
            at_start = false;
        }
        Ok(())
    }

    fn lookup(
        table: &VecDeque<(Vec<u8>, Vec<u8>)>,
        i: usize,
    ) -> Result<(&[u8], &[u8]), DecodeError> {
        match i {
            0 => Err(DecodeError("index 0")),
            1..=61 => {
                let (n, v) = STATIC[i - 1];
                Ok((n.as_bytes(), v.as_bytes()))
            }
            _ => table
                .get(i - 62)
                .map(|(n, v)| (&n[..], &v[..]))
                .ok_or(DecodeError("index past the dynamic table")),
        }
    }

    fn insert(&mut self, e: (Vec<u8>, Vec<u8>)) {
        let size = e.0.len() + e.1.len() + 32;
        // An entry larger than the table empties it and is not added (RFC 7541 §4.4).
        self.evict_to(self.max_size.saturating_sub(size));
        if size <= self.max_size {
            self.size += size;
            self.table.push_front(e);
        } else {
            self.spare.push(e);
        }
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            let Some(e) = self.table.pop_back() else {
                break;
            };
            self.size -= e.0.len() + e.1.len() + 32;
            self.spare.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode_all(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        d.decode(block, |n, v| {
            fields.push((
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            ))
        })
        .unwrap();
        fields
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_huffman_code_is_complete_and_matches_the_rfc() {
        // Kraft's sum of a complete prefix code is exactly 1.
        let sum: f64 = CODE_LENGTHS.iter().map(|&l| 0.5f64.powi(l as i32)).sum();
        assert_eq!(sum, 1.0);
        // Codes printed in RFC 7541 Appendix B: '0' 00000, 'a' 00011, ' ' 010100, EOS 30 ones.
        let code = |sym: usize| {
            let len = CODE_LENGTHS[sym] as usize;
            let h = &HUFFMAN;
            let pos = (h.offset[len]..h.offset[len] + h.count[len] as u16)
                .find(|&p| h.symbols[p as usize] == sym as u16)
                .unwrap();
            h.first[len] + u32::from(pos - h.offset[len])
        };
        assert_eq!(code(b'0' as usize), 0b00000);
        assert_eq!(code(b'a' as usize), 0b00011);
        assert_eq!(code(b' ' as usize), 0b010100);
        assert_eq!(code(0), 0x1ff8);
        assert_eq!(code(256), 0x3fff_ffff);
    }

    #[test]
    fn decodes_the_rfc_huffman_examples() {
        // RFC 7541 C.4.1 and C.6.1.
        let mut out = Vec::new();
        huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), &mut out).unwrap();
        assert_eq!(out, b"www.example.com");
        out.clear();
        huffman_decode(
            &hex("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"Mon, 21 Oct 2013 20:13:21 GMT");
        out.clear();
        huffman_decode(&hex("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"), &mut out).unwrap();
        assert_eq!(out, b"https://www.example.com");
        // Padding of 8 bits, or padding that is not ones, is an error.
        assert!(huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff ff"), &mut Vec::new()).is_err());
        assert!(huffman_decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4fe"), &mut Vec::new()).is_err());
    }

    #[test]
    fn decodes_the_rfc_response_sequence_with_eviction() {
        // RFC 7541 C.6: three responses with Huffman strings and a 256-byte table, so entries
        // are evicted. The table size update at the start shrinks our 4096 to 256.
        let mut d = Decoder::default();
        let mut first = vec![0x3f, 0xe1, 0x01]; // size update to 256
        first.extend(hex(
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        ));
        assert_eq!(
            decode_all(&mut d, &first),
            pairs(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(d.size, 222);
        let second = hex("4883 640e ffc1 c0bf");
        assert_eq!(
            decode_all(&mut d, &second),
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(d.size, 222);
        let third = hex(
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        );
        assert_eq!(
            decode_all(&mut d, &third),
            pairs(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
                ),
            ])
        );
        assert_eq!(d.size, 215);
        assert_eq!(d.table.len(), 3);
    }

    #[test]
    fn refuses_malformed_blocks() {
        let mut d = Decoder::default();
        let no = |d: &mut Decoder, b: &[u8]| d.decode(b, |_, _| {}).unwrap_err();
        assert_eq!(no(&mut d, &[0x80]), DecodeError("index 0"));
        assert_eq!(
            no(&mut d, &[0xbe]),
            DecodeError("index past the dynamic table")
        );
        assert_eq!(
            no(&mut d, &[0x04, 0x05, b'/']),
            DecodeError("truncated string")
        );
        assert_eq!(
            no(&mut d, &[0x88, 0x20]),
            DecodeError("table size update after a field")
        );
        assert_eq!(
            no(&mut d, &[0x3f, 0xe2, 0x1f]),
            DecodeError("table size above SETTINGS_HEADER_TABLE_SIZE")
        );
        assert_eq!(
            no(&mut d, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            DecodeError("integer too large")
        );
    }

    #[test]
    fn encoded_requests_decode_back() {
        let mut block = Vec::new();
        put_field(&mut block, b":method", b"GET");
        put_field(&mut block, b":method", b"PUT");
        put_field(&mut block, b":path", b"/");
        put_field(&mut block, b"x-trace", b"1");
        put_field(&mut block, b"user-agent", &[b'u'; 300]);
        assert_eq!(
            &block[..2],
            &[0x82, 0x02],
            "indexed, then a literal naming entry 2"
        );
        let mut d = Decoder::default();
        let ua = "u".repeat(300);
        assert_eq!(
            decode_all(&mut d, &block),
            pairs(&[
                (":method", "GET"),
                (":method", "PUT"),
                (":path", "/"),
                ("x-trace", "1"),
                ("user-agent", &ua),
            ])
        );
        assert!(d.table.is_empty(), "requests never index");
    }
}
