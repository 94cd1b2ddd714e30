"""Small misbehaving HTTP servers for hpbench's integration tests.

Each server is a plain-socket event loop (selectors, non-blocking sockets)
running in one daemon thread of the test process, listening on a fresh
loopback port. It reads requests (head up to the blank line, then a body
of Content-Length bytes, if any) and answers each with whatever its
`respond` function returns, so a test can script exactly the misbehaviour
it needs: error statuses, responses cut short by a close, malformed status
lines.

Everything is bounded in time: the loop wakes at least every 50 ms, stops
when asked or after `lifetime` seconds at the latest, and stop() joins the
thread with a timeout. One thread serves every connection, so a client that
reconnects thousands of times a second (hpbench does, after a close) costs
no thread creation.
"""

import errno
import selectors
import socket
import threading
import time

_POLL = 0.05


class _Conn:
    __slots__ = ("sock", "inbuf", "outbuf", "closing")

    def __init__(self, sock):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closing = False


def _content_length(head):
    for line in bytes(head).split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError:
                return 0
    return 0


class BadServer:
    """A scripted HTTP server: respond(request_bytes) -> (bytes, close).

    `close` true means: send the bytes, then close the connection (and
    ignore anything else the client sent on it). Counters (read them after
    stop()): connections accepted, requests answered."""

    def __init__(self, respond, lifetime=60.0, host="127.0.0.1"):
        self.respond = respond
        self.lifetime = lifetime
        self.host = host
        self.connections = 0
        self.requests = 0
        self.error = None
        self._stop = threading.Event()
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, 0))
        self._lsock.listen(512)
        self._lsock.setblocking(False)
        self.port = self._lsock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="badserver-%d" % self.port)

    def url(self, path="/"):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("bad server on port %d did not stop within "
                                 "%.1f s" % (self.port, timeout))
        if self.error is not None:
            raise AssertionError("bad server on port %d failed: %r"
                                 % (self.port, self.error))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- the loop ----------------------------------------------------------
    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self._lsock, selectors.EVENT_READ, None)
        deadline = time.monotonic() + self.lifetime
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                for key, mask in sel.select(_POLL):
                    if key.data is None:
                        self._accept(sel)
                    else:
                        self._service(sel, key.data, mask)
        except Exception as e:  # reported by stop()
            self.error = e
        finally:
            for key in list(sel.get_map().values()):
                try:
                    key.fileobj.close()
                except OSError:
                    pass
            sel.close()

    def _accept(self, sel):
        for _ in range(64):
            try:
                sock, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.ECONNABORTED, errno.EMFILE, errno.ENFILE):
                    return
                raise
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            sel.register(sock, selectors.EVENT_READ, _Conn(sock))

    def _close(self, sel, c):
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.close()
        except OSError:
            pass

    def _service(self, sel, c, mask):
        if mask & selectors.EVENT_READ and not c.closing:
            try:
                data = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._close(sel, c)
                return
            if data == b"":
                self._close(sel, c)
                return
            if data:
                c.inbuf += data
                self._answer(c)
        self._flush(sel, c)

    def _answer(self, c):
        """Answers every complete request in the input buffer, in order."""
        while not c.closing:
            end = c.inbuf.find(b"\r\n\r\n")
            if end < 0:
                return
            total = end + 4 + _content_length(c.inbuf[:end])
            if len(c.inbuf) < total:
                return
            req = bytes(c.inbuf[:total])
            del c.inbuf[:total]
            out, close = self.respond(req)
            self.requests += 1
            c.outbuf += out
            if close:
                c.closing = True
                c.inbuf.clear()

    def _flush(self, sel, c):
        while c.outbuf:
            try:
                n = c.sock.send(c.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(sel, c)
                return
            del c.outbuf[:n]
        if not c.outbuf and c.closing:
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._close(sel, c)
            return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.outbuf else 0)
        sel.modify(c.sock, want, c)


# -- scripted behaviours ----------------------------------------------------

def respond_500(req):
    """Every request gets a complete keep-alive 500."""
    body = b"internal error\n"
    return (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain"
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body, False)


def respond_truncated(req):
    """Announces 100 body bytes, sends 10, closes."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 100\r\n\r\n" + b"0123456789", True)


def respond_bad_status_line(req):
    """A well-framed response whose status line is not HTTP."""
    return (b"HTTX/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 2\r\n\r\nok", False)


def status_500_server(**kw):
    return BadServer(respond_500, **kw)


def truncating_server(**kw):
    return BadServer(respond_truncated, **kw)


def bad_status_line_server(**kw):
    return BadServer(respond_bad_status_line, **kw)
