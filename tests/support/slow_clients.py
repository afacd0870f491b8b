#!/usr/bin/env python3
"""Slow and idle HTTP clients against one server, for hydra-mirror's tests.

slow_clients.py HOST PORT --source ADDR --slow N --idle M --keepalive K
                --seconds S [--until-close]

Opens N connections that send a request head one byte a second and M
connections that send nothing, and K that send one whole request, read its
answer and then wait on the kept-alive connection, all from the local
address ADDR. A
connection the server closes is opened again, at most once a second per
slot, so the pressure holds. Stops by itself after S seconds and prints
one line: "slow_clients: opened X, closed by the server Y, first close
after Z s" (Z is -1 when the server closed nothing). --until-close stops
at the first connection the server closes.
"""
import argparse
import errno
import selectors
import socket
import sys
import time

WHOLE = b"GET /api/v1/health HTTP/1.1\r\nHost: keepalive\r\n\r\n"
HEAD = b"GET /api/v1/health HTTP/1.1\r\nHost: slow\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"


class Slot:
    def __init__(self, slow, keepalive=False):
        self.slow = slow
        self.keepalive = keepalive
        self.sock = None
        self.sent = 0
        self.opened_at = 0.0
        self.next_try = 0.0
        self.next_byte = 0.0


def open_keepalive(slot, args):
    """A connection that was answered once and is kept alive, or None."""
    try:
        s = socket.create_connection((args.host, args.port), timeout=5.0,
                                     source_address=(args.source, 0))
    except OSError:
        return None
    try:
        s.sendall(WHOLE)
        if not s.recv(4096):
            raise OSError("closed")
    except OSError:
        s.close()
        return None
    s.setblocking(False)
    return s


def open_slot(slot, args, sel, now):
    if slot.keepalive:
        s = open_keepalive(slot, args)
        if s is None:
            slot.next_try = now + 1.0
            return False
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((args.source, 0))
            err = s.connect_ex((args.host, args.port))
        except OSError:
            s.close()
            slot.next_try = now + 1.0
            return False
        if err not in (0, errno.EINPROGRESS):
            s.close()
            slot.next_try = now + 1.0
            return False
    slot.sock = s
    slot.sent = 0
    slot.opened_at = now
    slot.next_byte = now + 1.0
    sel.register(s, selectors.EVENT_READ, slot)
    return True


def close_slot(slot, sel, now):
    sel.unregister(slot.sock)
    slot.sock.close()
    slot.sock = None
    slot.next_try = now + 1.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--source", default="127.0.0.2")
    ap.add_argument("--slow", type=int, default=0)
    ap.add_argument("--idle", type=int, default=0)
    ap.add_argument("--keepalive", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--until-close", action="store_true")
    args = ap.parse_args()

    sel = selectors.DefaultSelector()
    slots = ([Slot(True) for _ in range(args.slow)] + [Slot(False) for _ in range(args.idle)]
             + [Slot(False, True) for _ in range(args.keepalive)])
    start = time.monotonic()
    end = start + args.seconds
    opened = closed = 0
    first_close = -1.0
    while True:
        now = time.monotonic()
        if now >= end or (args.until_close and closed > 0):
            break
        for slot in slots:
            if slot.sock is None and now >= slot.next_try:
                if open_slot(slot, args, sel, now):
                    opened += 1
            elif slot.sock is not None and slot.slow and now >= slot.next_byte:
                slot.next_byte = now + 1.0
                try:
                    slot.sock.send(HEAD[slot.sent % len(HEAD):slot.sent % len(HEAD) + 1])
                    slot.sent += 1
                except OSError:
                    pass
        for key, _ in sel.select(timeout=0.2):
            slot = key.data
            try:
                data = slot.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data == b"":
                closed += 1
                if first_close < 0:
                    first_close = now - slot.opened_at
                close_slot(slot, sel, now)
    for slot in slots:
        if slot.sock is not None:
            slot.sock.close()
    print("slow_clients: opened %d, closed by the server %d, first close after %.1f s"
          % (opened, closed, first_close))
    return 0


if __name__ == "__main__":
    sys.exit(main())
