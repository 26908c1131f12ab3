"""An independent gRPC server (Python grpcio) for regbench's interoperability tests.

Serves regbench.demo.v1.Registry without generated code: requests arrive as raw protobuf bytes.
Lookup answers a fixed Server message; a request whose bytes contain b"UNAVAILABLE" is aborted with
UNAVAILABLE, one containing b"slow" sleeps 200 ms first (so a shorter grpc-timeout expires in the
server: DEADLINE_EXCEEDED from grpc-core, not from regbench). Watch streams 5 messages, 5 ms apart.
It also offers server reflection (grpcio-reflection), describing the service with descriptors
protoc (grpcio-tools) compiled from proto/registry.proto: an independent check of regbench's
reflection client. Prints the port it bound, then serves until killed.
"""
import os
import tempfile
import sys
import time
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_tools import protoc

PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")

# Server{name: "peer", version: "1.0.0"}
SERVER = b"\x0a\x04peer\x12\x051.0.0"


def lookup(request, context):
    if b"UNAVAILABLE" in request:
        context.abort(grpc.StatusCode.UNAVAILABLE, "asked to fail")
    if b"slow" in request:
        time.sleep(0.2)
    return SERVER


def watch(request, context):
    for seq in range(5):
        if seq:
            time.sleep(0.005)
        # Event{seq: N, kind: "updated"}
        yield bytes([0x08, seq]) + b"\x12\x07updated"


def main():
    handlers = {
        "Lookup": grpc.unary_unary_rpc_method_handler(lookup),
        "Watch": grpc.unary_stream_rpc_method_handler(watch),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("regbench.demo.v1.Registry", handlers),)
    )
    # The service's descriptors, compiled by protoc, for reflection.
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "set.pb")
        if protoc.main(["protoc", f"-I{PROTO_DIR}", f"--descriptor_set_out={out}",
                        "--include_imports", "registry.proto"]) != 0:
            raise SystemExit("protoc failed")
        with open(out, "rb") as f:
            files = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    reflection.enable_server_reflection(
        ("regbench.demo.v1.Registry", reflection.SERVICE_NAME), server, pool=pool)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
