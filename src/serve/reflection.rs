//! gRPC server reflection (`grpc.reflection.v1.ServerReflection`, and `v1alpha`) for the demo
//! target's services, so a client needs no `.proto` (grpcurl, regbench without `--proto`).
//!
//! The stream is answered message by message as requests arrive (a client may wait for each answer
//! before it asks the next). The descriptors are the demo's own `.proto` files, compiled once with
//! protox; protobuf on the wire is written by hand, as in `grpc`.

use std::sync::OnceLock;

use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Response;
use prost::Message as _;
use tokio::sync::mpsc;

use super::grpc::{frame, ok_head, put_bytes_field, put_varint_field, status_trailers, Fields, OK};
use super::Streamed;

pub const V1: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
pub const V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

const SOURCES: [(&str, &str); 2] = [
    ("registry.proto", include_str!("../../proto/registry.proto")),
    ("health.proto", include_str!("../../proto/health.proto")),
];

/// Error codes of ErrorResponse (gRPC status codes).
const NOT_FOUND: u64 = 5;
const UNIMPLEMENTED: u64 = 12;

/// One compiled file: its name, the symbols it defines (its services among them), its encoded
/// `FileDescriptorProto`.
struct Described {
    name: String,
    symbols: Vec<String>,
    services: Vec<String>,
    proto: Vec<u8>,
}

struct Embedded;

impl protox::file::FileResolver for Embedded {
    fn resolve_path(&self, path: &std::path::Path) -> Option<String> {
        path.to_str().map(str::to_string)
    }

    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match SOURCES.iter().find(|(n, _)| *n == name) {
            Some((n, source)) => protox::file::File::from_source(n, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

fn described() -> &'static [Described] {
    static FILES: OnceLock<Vec<Described>> = OnceLock::new();
    FILES.get_or_init(|| {
        let mut compiler = protox::Compiler::with_file_resolver(Embedded);
        for (name, _) in SOURCES {
            // invariant: the embedded sources compile (tests/grpc.rs reflects every service).
            if compiler.open_file(name).is_err() {
                return Vec::new();
            }
        }
        compiler
            .file_descriptor_set()
            .file
            .into_iter()
            .map(|f| {
                let package = f.package().to_string();
                let full = |n: &str| match package.is_empty() {
                    true => n.to_string(),
                    false => format!("{package}.{n}"),
                };
                let services: Vec<String> = f.service.iter().map(|s| full(s.name())).collect();
                let mut symbols: Vec<String> =
                    f.message_type.iter().map(|m| full(m.name())).collect();
                for s in &f.service {
                    symbols.push(full(s.name()));
                    let methods = s.method.iter();
                    symbols.extend(methods.map(|m| format!("{}.{}", full(s.name()), m.name())));
                }
                Described {
                    name: f.name().to_string(),
                    symbols,
                    services,
                    proto: f.encode_to_vec(),
                }
            })
            .collect()
    })
}

/// Answers a reflection stream: each framed request in `body`, as it comes.
pub fn serve(mut body: Incoming) -> Response<Streamed> {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(f)) = body.frame().await {
            let Ok(data) = f.into_data() else { continue };
            buf.extend_from_slice(&data);
            // Every complete message in the buffer.
            while buf.len() >= 5 {
                let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                if buf.len() < 5 + len {
                    break;
                }
                let request: Vec<u8> = buf.drain(..5 + len).skip(5).collect();
                if tx
                    .send(Frame::data(frame(&answer(&request))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let _ = tx.send(Frame::trailers(status_trailers(OK, ""))).await;
    });
    ok_head(Streamed(rx))
}

/// A ServerReflectionResponse to one ServerReflectionRequest.
fn answer(request: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(fields) = Fields::parse(request) else {
        return error(out, request, UNIMPLEMENTED, "the request does not decode");
    };
    put_bytes_field(&mut out, 1, fields.string(1).unwrap_or("").as_bytes());
    put_bytes_field(&mut out, 2, request);
    let files = described();
    let found: Vec<&Described> = if let Some(symbol) = fields.string(4) {
        // The file defining the symbol, then every file it imports.
        match files.iter().find(|f| f.symbols.iter().any(|s| s == symbol)) {
            Some(f) => vec![f],
            None => {
                return error(
                    Vec::new(),
                    request,
                    NOT_FOUND,
                    &format!("no symbol {symbol}"),
                )
            }
        }
    } else if let Some(name) = fields.string(3) {
        match files.iter().find(|f| f.name == name) {
            Some(f) => vec![f],
            None => return error(Vec::new(), request, NOT_FOUND, &format!("no file {name}")),
        }
    } else if fields.string(7).is_some() {
        let mut list = Vec::new();
        for f in files {
            for s in &f.services {
                let mut service = Vec::new();
                put_bytes_field(&mut service, 1, s.as_bytes());
                put_bytes_field(&mut list, 1, &service);
            }
        }
        put_bytes_field(&mut out, 6, &list);
        return out;
    } else {
        return error(
            Vec::new(),
            request,
            UNIMPLEMENTED,
            "extensions are not served",
        );
    };
    let mut response = Vec::new();
    for f in found {
        put_bytes_field(&mut response, 1, &f.proto);
    }
    put_bytes_field(&mut out, 4, &response);
    out
}

fn error(mut out: Vec<u8>, request: &[u8], code: u64, message: &str) -> Vec<u8> {
    out.clear();
    put_bytes_field(&mut out, 2, request);
    let mut e = Vec::new();
    put_varint_field(&mut e, 1, code);
    put_bytes_field(&mut e, 2, message.as_bytes());
    put_bytes_field(&mut out, 7, &e);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_service_is_described() {
        let files = described();
        assert_eq!(files.len(), 2);
        let registry = files.iter().find(|f| f.name == "registry.proto").unwrap();
        assert!(registry
            .symbols
            .iter()
            .any(|s| s == "regbench.demo.v1.Registry.Lookup"));
        assert_eq!(registry.services, ["regbench.demo.v1.Registry"]);
        // file_containing_symbol: the answer holds the file.
        let mut req = Vec::new();
        put_bytes_field(&mut req, 4, b"grpc.health.v1.Health");
        let a = answer(&req);
        let f = Fields::parse(&a).unwrap();
        assert!(f.bytes(4).is_some());
    }
}
