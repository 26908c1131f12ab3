#!/usr/bin/env bash
# Regenerates docs/report.png: the HTML report (-o html) of a real run — the service-registry example
# plan (open-model scenarios, a sync and a config reload with their windows, the target watched)
# against the demo target — rendered by headless Chromium. Needs: chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "needs chromium: apt-get install -y chromium" >&2; exit 1; }
cargo build --release --quiet --locked
bin=target/release/regbench
work=$(mktemp -d)
trap 'kill "$served" 2>/dev/null || true; rm -rf "$work"' EXIT
addr=127.0.0.1:18655
"$bin" serve --addr "$addr" --servers 1000 --sync-per-server 1ms --latency 5ms \
  --config "$work/registry.conf" --config-poll 100ms >/dev/null 2>&1 &
served=$!
sleep 1
"$bin" run examples/service-registry-plan.toml -z 20s --quiet \
  -e "base_url=http://$addr" -e "config_file=$work/registry.conf" -e "target_cmdline=serve --addr $addr" \
  -o html="$work/report.html" >/dev/null || true   # thresholds may fail; the page is what we want
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --proxy-server=127.0.0.1:9 \
  --window-size=1000,3000 --screenshot="$work/report.png" "file://$work/report.html" 2>/dev/null
mv "$work/report.png" docs/report.png
echo "wrote docs/report.png"
