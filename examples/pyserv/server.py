"""A tiny HTTP server for the pyserv example: answers every GET with a greeting."""

import http.server
import sys


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"Hello from pyserv\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write(f"{self.address_string()} - {fmt % args}\n")
        sys.stderr.flush()


if __name__ == "__main__":
    print("pyserv listening on 0.0.0.0:8000", flush=True)
    http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Hello).serve_forever()
