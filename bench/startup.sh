#!/usr/bin/env bash
# Start to first request: from exec of `regbench run URL -n 1` to the first request byte arriving at a
# loopback listener. Target < 50 ms. Usage: bench/startup.sh [RUNS]
source "$(dirname "$0")/lib.sh"
runs=${1:-10}
build_regbench
python3 - "$REGBENCH" "$runs" <<'PY'
import socket, subprocess, sys, time, statistics
exe, runs = sys.argv[1], int(sys.argv[2])
results = []
for _ in range(runs):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", 0)); l.listen(16); port = l.getsockname()[1]
    t0 = time.monotonic()
    p = subprocess.Popen([exe, "run", f"http://127.0.0.1:{port}/", "-n", "1", "-c", "1", "--quiet"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c, _ = l.accept(); c.recv(4096); t1 = time.monotonic()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); p.wait(); c.close(); l.close()
    results.append((t1 - t0) * 1000)
print("start to first request (ms):", " ".join(f"{x:.1f}" for x in results))
print(f"median {statistics.median(results):.1f} ms, max {max(results):.1f} ms over {runs} runs")
PY
