#!/usr/bin/env python3
"""Slow and idle HTTP clients against one server, for load tests.

  slowloris.py --host 127.0.0.1 --port P --count N --duration S
               --mode slow|idle|body|keepalive
               [--sources K --source-base 127.77.0.1] [--reconnect] [--until-close]

Holds N TCP connections open for S seconds. mode slow sends one byte of a
request head that never ends, per connection, once a second; mode idle
sends nothing; mode body sends a whole head announcing a 4000-byte body at
once, then one byte of the body a second; mode keepalive sends one whole
request, reads its answer and then waits on the kept-alive connection.
--sources spreads the connections over K loopback source addresses counted
up from --source-base (a per-address cap then sees N/K each; K = 1 pins one
source address). --reconnect opens a new connection for each one the
server closes, so the pressure stays at N (topped up once a second, at
most N attempts a second). --until-close stops at the first connection the
server closes. Prints "ready" once the first N connections are under way
and one JSON line when done: {"opened", "closed_by_server", "refused",
"max_open", "open_at_end", "held_max_s", "first_close_s"}, held_max_s being
the longest any connection stayed open and first_close_s how long the first
connection the server closed had been open (-1: the server closed none).

Every loop is bounded: N, S, K and the number of reconnects have caps, and
only 127.0.0.0/8 is allowed as host and source.
"""
import argparse
import errno
import ipaddress
import json
import selectors
import socket
import sys
import time

COUNT_MAX = 5000        # more than any test needs, less than a default fd cap
DURATION_MAX = 600      # seconds
SOURCES_MAX = 4096
RECONNECTS_PER_CONN = 100  # a server closing at once cannot spin us forever
HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: slowloris\r\nX-Slow: "
WHOLE = b"GET /api/v1/health HTTP/1.1\r\nHost: slowloris\r\n\r\n"
ANSWER_WAIT_S = 5.0     # a keepalive connection's first answer, bounded
BODY_HEAD = (b"POST /api/v1/nodes/x/status HTTP/1.1\r\nHost: slowloris\r\n"
             b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n")


def loopback(text, what):
    addr = ipaddress.IPv4Address(text)
    if not addr.is_loopback:
        sys.exit(f"slowloris: {what} {text} is not in 127.0.0.0/8")
    return addr


class Load:
    def __init__(self, args):
        self.args = args
        self.sel = selectors.DefaultSelector()
        self.conns = {}           # socket -> bytes of HEAD sent
        self.born = {}            # socket -> monotonic time it was opened
        self.held_max = 0.0
        self.first_close = -1.0
        self.stats = {"opened": 0, "closed_by_server": 0, "refused": 0,
                      "max_open": 0, "open_at_end": 0}
        self.next_source = 0
        self.base = loopback(args.source_base, "source") if args.sources else None

    def answered_once(self, s):
        """Sends one whole request on s and waits for the start of its answer."""
        s.settimeout(ANSWER_WAIT_S)
        rc = s.connect_ex((self.args.host, self.args.port))
        if rc != 0:
            raise OSError(rc, "connect")
        s.sendall(WHOLE)
        if not s.recv(4096):
            raise OSError(errno.ECONNRESET, "closed before answering")
        s.setblocking(False)

    def open_one(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            if self.base is not None:
                src = self.base + (self.next_source % self.args.sources)
                self.next_source += 1
                s.bind((str(src), 0))
            if self.args.mode == "keepalive":
                self.answered_once(s)
            else:
                rc = s.connect_ex((self.args.host, self.args.port))
                if rc not in (0, errno.EINPROGRESS):
                    raise OSError(rc, "connect")
        except OSError:
            s.close()
            self.stats["refused"] += 1
            return
        self.conns[s] = 0
        self.born[s] = time.monotonic()
        self.sel.register(s, selectors.EVENT_READ)
        self.stats["opened"] += 1
        self.stats["max_open"] = max(self.stats["max_open"], len(self.conns))

    def drop(self, s, by_server=False):
        self.sel.unregister(s)
        del self.conns[s]
        held = time.monotonic() - self.born.pop(s)
        self.held_max = max(self.held_max, held)
        s.close()
        if by_server:
            self.stats["closed_by_server"] += 1
            if self.first_close < 0:
                self.first_close = held

    def on_readable(self, s):
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if data:
            return  # an answer to a head we never finished: keep holding
        self.drop(s, by_server=True)

    def trickle(self):
        for s in list(self.conns):
            sent = self.conns[s]
            if self.args.mode == "body" and sent == 0:
                chunk = BODY_HEAD
            else:
                chunk = HEAD[sent:sent + 1] if sent < len(HEAD) else b"a"
            try:
                s.send(chunk)
                self.conns[s] = sent + len(chunk)
            except BlockingIOError:
                pass
            except OSError:
                self.drop(s, by_server=True)

    def run(self):
        a = self.args
        budget = a.count * RECONNECTS_PER_CONN
        for _ in range(a.count):
            self.open_one()
        print("ready", flush=True)
        end = time.monotonic() + a.duration
        next_trickle = time.monotonic() + 1.0
        while True:
            now = time.monotonic()
            if now >= end or (a.until_close and self.first_close >= 0):
                break
            for key, _ in self.sel.select(timeout=min(0.2, end - now)):
                self.on_readable(key.fileobj)
            if time.monotonic() < next_trickle:
                continue
            next_trickle += 1.0
            if a.mode in ("slow", "body"):
                self.trickle()
            # Topping up once a second paces reconnects to N a second, even
            # when every attempt fails.
            if a.reconnect:
                for _ in range(min(a.count - len(self.conns), budget)):
                    budget -= 1
                    self.open_one()
        self.stats["open_at_end"] = len(self.conns)
        for s in list(self.conns):
            self.drop(s)
        self.stats["held_max_s"] = round(self.held_max, 2)
        self.stats["first_close_s"] = round(self.first_close, 2)
        print(json.dumps(self.stats), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--mode", choices=("slow", "idle", "body", "keepalive"), required=True)
    p.add_argument("--sources", type=int, default=0)
    p.add_argument("--source-base", default="127.77.0.1")
    p.add_argument("--reconnect", action="store_true")
    p.add_argument("--until-close", action="store_true")
    a = p.parse_args()
    loopback(a.host, "host")
    if not 0 < a.port < 65536:
        sys.exit("slowloris: --port must be 1..65535")
    if not 0 < a.count <= COUNT_MAX:
        sys.exit(f"slowloris: --count must be 1..{COUNT_MAX}")
    if not 0 < a.duration <= DURATION_MAX:
        sys.exit(f"slowloris: --duration must be in (0, {DURATION_MAX}]")
    if not 0 <= a.sources <= SOURCES_MAX:
        sys.exit(f"slowloris: --sources must be 0..{SOURCES_MAX}")
    Load(a).run()


if __name__ == "__main__":
    main()
