//! Compressed response bodies. regbench asks for gzip as hey, oha and k6 do (docs/compatibility.md),
//! counts the body as it came off the wire, and learns its decoded size from gzip's trailer (the
//! last 4 bytes, RFC 1952 ISIZE) — so a compressed response costs no inflating. Only a body that
//! checks, extractions or pagination read is inflated, after it has arrived.

use std::io::Write;

use crate::sample::Coding;

/// A body's decoded size, tracked as its bytes stream past.
#[derive(Clone, Copy, Debug, Default)]
pub struct Decoded {
    coding: Coding,
    /// The last bytes seen (gzip's trailer once the body has ended), newest last.
    tail: [u8; 8],
}

/// A gzip member is at least a 10-byte header and an 8-byte trailer.
const GZIP_MIN: u64 = 18;

impl Decoded {
    pub fn new(coding: Coding) -> Decoded {
        Decoded {
            coding,
            tail: [0; 8],
        }
    }

    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Takes a piece of the body (after de-chunking).
    #[inline]
    pub fn feed(&mut self, data: &[u8]) {
        if self.coding != Coding::Gzip || data.is_empty() {
            return;
        }
        let n = data.len().min(8);
        self.tail.copy_within(n.., 0);
        self.tail[8 - n..].copy_from_slice(&data[data.len() - n..]);
    }

    /// The decoded size of a body of `body_bytes` wire bytes: itself for identity, gzip's ISIZE
    /// (the size mod 2³², so exact below 4 GiB per response), 0 when unknown.
    pub fn size(&self, body_bytes: u64) -> u64 {
        match self.coding {
            Coding::Identity => body_bytes,
            Coding::Gzip if body_bytes >= GZIP_MIN => u64::from(u32::from_le_bytes([
                self.tail[4],
                self.tail[5],
                self.tail[6],
                self.tail[7],
            ])),
            Coding::Gzip | Coding::Other => 0,
        }
    }
}

/// The content coding named in an HTTP/1.1-form response head.
pub fn of_head(head: &[u8]) -> Coding {
    crate::headers::header_value(head, "content-encoding")
        .map_or(Coding::Identity, |v| Coding::from_header(v.as_bytes()))
}

/// Inflates a gzip body (or the kept prefix of one) into `out`, keeping at most `max` bytes. A
/// truncated or corrupt body gives what could be decoded before the damage: checks then see that
/// prefix, as they see the kept prefix of an identity body.
pub fn gunzip(body: &[u8], out: &mut Vec<u8>, max: usize) {
    out.clear();
    let mut dec = flate2::write::GzDecoder::new(Bounded { out, max });
    // Fed in small pieces so one write never inflates more than ~1 MiB past `max` (a 1:1000
    // ratio is possible).
    for piece in body.chunks(1024) {
        if dec.write_all(piece).is_err() || dec.get_ref().full() {
            break;
        }
    }
    let _ = dec.try_finish();
}

/// A writer that keeps the first `max` bytes and then reports itself full.
struct Bounded<'a> {
    out: &'a mut Vec<u8>,
    max: usize,
}

impl Bounded<'_> {
    fn full(&self) -> bool {
        self.out.len() >= self.max
    }
}

impl Write for Bounded<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.max.saturating_sub(self.out.len());
        self.out.extend_from_slice(&buf[..buf.len().min(room)]);
        // Everything is accepted, so the decoder never retries what was cut off.
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_size_comes_from_the_trailer_however_the_body_is_split() {
        let plain = b"{\"repositories\":[\"a\",\"b\"]}".repeat(100);
        let z = gzip(&plain);
        for split in [1, 3, 7, 8, 9, 100, z.len()] {
            let mut d = Decoded::new(Coding::Gzip);
            for piece in z.chunks(split) {
                d.feed(piece);
            }
            assert_eq!(d.size(z.len() as u64), plain.len() as u64, "split {split}");
        }
        assert_eq!(Decoded::new(Coding::Identity).size(42), 42);
        assert_eq!(Decoded::new(Coding::Other).size(42), 0);
        // Too short to be gzip: unknown, not a garbage number.
        let mut d = Decoded::new(Coding::Gzip);
        d.feed(b"0123456789");
        assert_eq!(d.size(10), 0);
    }

    #[test]
    fn gunzip_bounded_and_tolerant() {
        let plain = b"0123456789".repeat(1000);
        let z = gzip(&plain);
        let mut out = Vec::new();
        gunzip(&z, &mut out, usize::MAX);
        assert_eq!(out, plain);
        gunzip(&z, &mut out, 100);
        assert_eq!(out, &plain[..100]);
        // A kept prefix decodes to a prefix.
        gunzip(&z[..z.len() / 2], &mut out, usize::MAX);
        assert!(!out.is_empty() && plain.starts_with(&out));
        gunzip(b"not gzip at all", &mut out, usize::MAX);
        assert!(out.is_empty());
    }

    #[test]
    fn codings_from_headers() {
        assert_eq!(Coding::from_header(b" gzip "), Coding::Gzip);
        assert_eq!(Coding::from_header(b"X-GZIP"), Coding::Gzip);
        assert_eq!(Coding::from_header(b"identity"), Coding::Identity);
        assert_eq!(Coding::from_header(b"br"), Coding::Other);
        assert_eq!(Coding::from_header(b"gzip, br"), Coding::Other);
        assert_eq!(
            of_head(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n"),
            Coding::Gzip
        );
        assert_eq!(of_head(b"HTTP/1.1 200 OK\r\n\r\n"), Coding::Identity);
    }
}
