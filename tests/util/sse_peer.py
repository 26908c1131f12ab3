"""An independent Server-Sent Events server (Python's standard library) for regbench's tests.

GET /events sends 5 events 5 ms apart (id: N, data: JSON with sent_unix_nanos), resuming after a
Last-Event-ID, then ends the stream by closing the connection (no length, no chunking: the body is
delimited by the close). Prints the port it bound, then serves until killed.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path != "/events":
            self.send_error(404)
            return
        first = int(self.headers.get("Last-Event-ID", "-1")) + 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for seq in range(first, first + 5):
            if seq > first:
                time.sleep(0.005)
            data = json.dumps({"seq": seq, "sent_unix_nanos": time.time_ns()})
            self.wfile.write(f"id: {seq}\ndata: {data}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
