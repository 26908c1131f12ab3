//! gRPC steps from `.proto` files or a descriptor set: the method is looked up, its request message
//! given as JSON is encoded to protobuf once (prost-reflect's dynamic messages, protobuf's JSON
//! mapping), and the step becomes a static HTTP/2 request (`plan::grpc`). `.proto` files are
//! compiled here by protox (pure Rust: no `protoc` to install).

use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message as _;
use prost_reflect::{DescriptorPool, MethodDescriptor};

use crate::plan::grpc::{self, Call};
use crate::plan::template::Template;
use crate::plan::{RequestTemplate, Step};

/// Where a call's descriptors come from.
#[derive(Clone, Debug, Default)]
pub struct Protos {
    /// `.proto` files to compile.
    pub files: Vec<PathBuf>,
    /// Directories imports are searched in (each file's own directory is searched too).
    pub includes: Vec<PathBuf>,
    /// A compiled `FileDescriptorSet` (`protoc --descriptor_set_out --include_imports`,
    /// `buf build -o`).
    pub protoset: Option<PathBuf>,
}

impl Protos {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.protoset.is_none()
    }

    /// Compiles the files (or reads the set) into one pool of descriptors.
    pub fn load(&self) -> Result<DescriptorPool, String> {
        let mut pool = DescriptorPool::new();
        if let Some(path) = &self.protoset {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read descriptor set '{}': {e}", path.display()))?;
            pool.decode_file_descriptor_set(bytes.as_slice())
                .map_err(|e| format!("'{}' is not a descriptor set: {e}", path.display()))?;
        }
        if !self.files.is_empty() {
            let mut includes = self.includes.clone();
            for f in &self.files {
                let dir = f.parent().filter(|d| !d.as_os_str().is_empty());
                let dir = dir.unwrap_or(Path::new(".")).to_path_buf();
                if !includes.contains(&dir) {
                    includes.push(dir);
                }
            }
            let set = protox::compile(&self.files, &includes)
                .map_err(|e| format!("cannot compile {}: {}", list(&self.files), located(&e)))?;
            pool.add_file_descriptor_set(set)
                .map_err(|e| format!("cannot use {}: {e}", list(&self.files)))?;
        }
        Ok(pool)
    }
}

/// A compile error with where it is: `FILE:LINE:COLUMN: what` (from the error's first label).
fn located(e: &protox::Error) -> String {
    use miette::Diagnostic as _;
    let at = e.labels().and_then(|mut l| l.next()).and_then(|label| {
        let source = e.source_code()?;
        let span = source.read_span(label.inner(), 0, 0).ok()?;
        let file = span
            .name()
            .map(str::to_string)
            .or_else(|| e.file().map(str::to_string))?;
        Some(format!("{file}:{}:{}", span.line() + 1, span.column() + 1))
    });
    match at {
        Some(at) => format!("{at}: {e}"),
        None => e.to_string(),
    }
}

impl Protos {
    /// A pool of encoded `FileDescriptorProto`s (from server reflection), in any order.
    pub fn pool_of(files: Vec<Vec<u8>>) -> Result<DescriptorPool, String> {
        // A FileDescriptorSet is its files as field 1, repeated: built on the wire.
        let mut set = Vec::new();
        for f in &files {
            prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut set);
            prost::encoding::encode_varint(f.len() as u64, &mut set);
            set.extend_from_slice(f);
        }
        let mut pool = DescriptorPool::new();
        pool.decode_file_descriptor_set(set.as_slice())
            .map_err(|e| format!("the server's reflected descriptors do not load: {e}"))?;
        Ok(pool)
    }
}

fn list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| format!("'{}'", f.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Finds `package.Service/Method` (or `package.Service.Method`) in `pool`.
pub fn method(pool: &DescriptorPool, name: &str) -> Result<MethodDescriptor, String> {
    let name = name.trim_start_matches('/');
    let (service, method) = name
        .rsplit_once('/')
        .or_else(|| name.rsplit_once('.'))
        .ok_or_else(|| format!("'{name}' is not a method: write package.Service/Method"))?;
    let Some(svc) = pool.get_service_by_name(service) else {
        let known: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
        return Err(format!(
            "no service '{service}' in the protos (they define: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
    };
    let found = svc.methods().find(|m| m.name() == method);
    found.ok_or_else(|| {
        let known: Vec<String> = svc.methods().map(|m| m.name().to_string()).collect();
        format!(
            "service '{service}' has no method '{method}' (it has: {})",
            known.join(", ")
        )
    })
}

/// Encodes `json` (protobuf's JSON mapping; empty: the default message) as `desc`'s input.
pub fn encode(desc: &MethodDescriptor, json: &str) -> Result<Vec<u8>, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let msg =
        grpc::message(&desc.input(), json.as_bytes()).map_err(|e| format!("the message is {e}"))?;
    Ok(msg.encode_to_vec())
}

/// A gRPC step named `name`: `method` (`package.Service/Method`) with its request message as JSON,
/// metadata headers and an optional deadline.
pub fn step(
    pool: &DescriptorPool,
    name: Option<&str>,
    method_name: &str,
    json: &str,
    metadata: &[(String, String)],
    deadline: Option<Duration>,
) -> Result<Step, String> {
    let desc = callable(pool, method_name)?;
    let message = encode(&desc, json)?;
    let call = call(&desc, deadline);
    let name = name.map_or_else(|| call.method.clone(), str::to_string);
    let request = grpc::request(&name, &call, &message, metadata);
    let mut step = Step::new(request);
    step.grpc = Some(call);
    Ok(step)
}

/// A method regbench can call: unary or server-streaming.
fn callable(pool: &DescriptorPool, method_name: &str) -> Result<MethodDescriptor, String> {
    let desc = method(pool, method_name)?;
    if desc.is_client_streaming() {
        return Err(format!(
            "{} is a client-streaming{} call: regbench sends unary and server-streaming calls",
            desc.full_name(),
            if desc.is_server_streaming() {
                " (bidirectional)"
            } else {
                ""
            }
        ));
    }
    Ok(desc)
}

fn call(desc: &MethodDescriptor, deadline: Option<Duration>) -> Call {
    Call {
        method: format!("{}/{}", desc.parent_service().full_name(), desc.name()),
        server_streaming: desc.is_server_streaming(),
        deadline,
        input: None,
    }
}

/// A gRPC step whose message is a template (`{"name": "server-{{vu}}"}`): rendered to JSON each
/// iteration and encoded as the method's input then (the engine's `grpc::encode_json`).
pub fn templated_step(
    pool: &DescriptorPool,
    name: &str,
    method_name: &str,
    message: Template,
    metadata: &[(String, String)],
    deadline: Option<Duration>,
) -> Result<Step, String> {
    let desc = callable(pool, method_name)?;
    let mut call = call(&desc, deadline);
    call.input = Some(desc.input());
    let request = grpc::request(name, &call, &[], metadata);
    let template = RequestTemplate {
        path: Template::literal(&request.path),
        headers: request
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), Template::literal(v)))
            .collect(),
        body: message,
    };
    let mut step = Step::new(request);
    step.template = Some(std::sync::Arc::new(template));
    step.grpc = Some(call);
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> DescriptorPool {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.proto");
        std::fs::write(&path, include_str!("../../proto/registry.proto")).unwrap();
        Protos {
            files: vec![path],
            ..Protos::default()
        }
        .load()
        .unwrap()
    }

    #[test]
    fn json_is_encoded_with_the_methods_input() {
        let pool = demo();
        let m = method(&pool, "regbench.demo.v1.Registry/Lookup").unwrap();
        // name = "a" (field 1, length-delimited), delay_ms = 5 (field 2, varint).
        assert_eq!(
            encode(&m, r#"{"name":"a","delayMs":5}"#).unwrap(),
            [10, 1, b'a', 16, 5]
        );
        assert_eq!(encode(&m, "").unwrap(), Vec::<u8>::new());
        let e = encode(&m, r#"{"nmae":"a"}"#).unwrap_err();
        assert!(e.contains("regbench.demo.v1.LookupRequest"), "{e}");
        assert!(method(&pool, "regbench.demo.v1.Registry/Nope")
            .unwrap_err()
            .contains("it has: Lookup"));
        let s = step(
            &pool,
            None,
            "regbench.demo.v1.Registry/Watch",
            "{}",
            &[],
            None,
        )
        .unwrap();
        assert!(s.grpc.as_ref().unwrap().server_streaming);
        assert_eq!(s.request.path, "/regbench.demo.v1.Registry/Watch");
    }

    #[test]
    fn a_bad_proto_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.proto");
        std::fs::write(
            &path,
            "syntax = \"proto3\";\nmessage A {\n  strin x = 1;\n}\n",
        )
        .unwrap();
        let e = Protos {
            files: vec![path],
            ..Protos::default()
        }
        .load()
        .unwrap_err();
        assert!(e.contains("bad.proto:3:3: "), "{e}");
    }
}
