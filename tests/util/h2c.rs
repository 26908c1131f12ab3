//! A minimal h2c server that allocates nothing per request (the allocation test counts every
//! allocation in the process): reads frames into a fixed buffer and answers every HEADERS frame with
//! `:status 200` (static table index 8) and a 13-byte DATA frame. It notes the last frame each
//! client sent before closing, so tests can see how regbench ends its connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The last frame a closed connection sent: its type in bits 32..40 and, for GOAWAY, the error code
/// in the low 32 bits. `u64::MAX` until a connection has closed.
pub type LastFrame = Arc<AtomicU64>;

pub fn server() -> (SocketAddr, LastFrame) {
    start(false)
}

/// The same, answering every request as a unary gRPC call: `:status 200`, one 2-byte message, and
/// trailers with `grpc-status: 0`.
#[allow(dead_code)] // used by the allocation test only
pub fn grpc_server() -> SocketAddr {
    start(true).0
}

fn start(grpc: bool) -> (SocketAddr, LastFrame) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let last: LastFrame = Arc::new(AtomicU64::new(u64::MAX));
    let noted = Arc::clone(&last);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let noted = Arc::clone(&noted);
            std::thread::spawn(move || {
                let seen = serve(s, grpc);
                noted.store(seen, Ordering::SeqCst);
            });
        }
    });
    (addr, last)
}

/// Serves one connection until it closes; returns its last frame as [`LastFrame`] encodes it.
fn serve(mut s: std::net::TcpStream, grpc: bool) -> u64 {
    let mut last = u64::MAX;
    // Our SETTINGS (empty); regbench needs no more to start.
    if s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).is_err() {
        return last;
    }
    let mut buf = [0u8; 65536];
    let (mut start, mut end) = (0, 0);
    let mut preface = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", skipped
    let mut out = [0u8; 4096];
    loop {
        if start == end {
            (start, end) = (0, 0);
        } else if end == buf.len() {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        match s.read(&mut buf[end..]) {
            Ok(0) | Err(_) => return last,
            Ok(n) => end += n,
        }
        let skip = preface.min(end - start);
        (start, preface) = (start + skip, preface - skip);
        let mut o = 0;
        while end - start >= 9 {
            let h = &buf[start..start + 9];
            let len = (h[0] as usize) << 16 | (h[1] as usize) << 8 | h[2] as usize;
            if end - start < 9 + len {
                break;
            }
            let payload = &buf[start + 9..start + 9 + len];
            last = u64::from(h[3]) << 32;
            if h[3] == 7 && len >= 8 {
                last |= u64::from(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
            if h[3] == 1 {
                let id = &h[5..9];
                // HEADERS, END_HEADERS: 0x88; DATA, END_STREAM: the body.
                let reply = [
                    &[0, 0, 1, 1, 4][..],
                    id,
                    &[0x88, 0, 0, 13, 0, 1],
                    id,
                    b"hello, world\n",
                ];
                // gRPC: the head, a DATA frame with one framed message (field 1 = 1), and trailers
                // (HEADERS, END_STREAM | END_HEADERS) with a literal `grpc-status: 0`.
                let grpc_reply = [
                    &[0, 0, 1, 1, 4][..],
                    id,
                    &[0x88, 0, 0, 7, 0, 0],
                    id,
                    &[0, 0, 0, 0, 2, 8, 1],
                    &[0, 0, 15, 1, 5],
                    id,
                    b"\x00\x0bgrpc-status\x010",
                ];
                let reply = if grpc { &grpc_reply[..] } else { &reply[..] };
                for part in reply {
                    out[o..o + part.len()].copy_from_slice(part);
                    o += part.len();
                }
                if o > out.len() - 64 {
                    if s.write_all(&out[..o]).is_err() {
                        return last;
                    }
                    o = 0;
                }
            }
            start += 9 + len;
        }
        if o > 0 && s.write_all(&out[..o]).is_err() {
            return last;
        }
    }
}
