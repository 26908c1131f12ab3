#!/usr/bin/env bash
# The one test command (README, CI): installs what the tests need on a fresh Debian machine, then runs
# every test. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests start as real targets: the OCI registry (distribution 2.8) and htpasswd
# (bcrypt entries for its Basic auth); util-linux (unshare, taskset) and iproute2 (ip) for the tests
# that pin the generator to a CPU and give it a network namespace with a small port range; nginx-light
# as an independent server (its gzip module, h2c); chromium opens the HTML report headless; xmllint
# (libxml2-utils) validates the JUnit report against its schema; tmux shows the live terminal view.
packages=(docker-registry apache2-utils util-linux iproute2 nginx-light chromium libxml2-utils tmux)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "test.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Python's hdrhistogram reads the HDR interval logs regbench writes (an independent implementation).
python3 -c 'import hdrh' 2>/dev/null || {
  echo "test.sh: installing the Python package hdrhistogram" >&2
  python3 -m pip install -q hdrhistogram
}

# Independent protocol servers for the interoperability tests: grpcio (gRPC) and websockets.
# grpcio-reflection and grpcio-tools (protoc) describe the gRPC peer's service independently.
python3 -c 'import grpc, grpc_reflection, grpc_tools, websockets' 2>/dev/null || {
  echo "test.sh: installing the Python packages grpcio, grpcio-reflection, grpcio-tools and websockets" >&2
  python3 -m pip install -q grpcio grpcio-reflection grpcio-tools websockets
}

# The JUnit schema CI systems read (Jenkins xunit-plugin's junit-10.xsd, MIT), as pytest ships it in
# its source distribution to validate its own JUnit output: fetched, not vendored.
xsd=target/test-deps/junit-10.xsd
[[ -s $xsd ]] || {
  echo "test.sh: fetching junit-10.xsd from pytest's source distribution" >&2
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary :all: pytest==8.3.5 -d "$tmp"
  mkdir -p "$(dirname "$xsd")"
  tar xzf "$tmp"/pytest-8.3.5.tar.gz -O pytest-8.3.5/testing/example_scripts/junit-10.xsd > "$xsd.tmp"
  mv "$xsd.tmp" "$xsd"
  rm -rf "$tmp"
}

# kubernetes-validate checks the Kubernetes manifests against the API's OpenAPI schemas.
command -v kubernetes-validate >/dev/null || {
  echo "test.sh: installing the Python package kubernetes-validate" >&2
  python3 -m pip install -q kubernetes-validate
}

command -v cargo >/dev/null || { echo "test.sh: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }

cargo test --locked "$@"
