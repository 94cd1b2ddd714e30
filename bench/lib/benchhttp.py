"""Shared helpers for the bench/lib Python tools (stdlib only).

Response framing for the tiny HTTP/1.1 clients (status line plus
Content-Length, which every server under test sends), process-tree lookups
in /proc, and a free loopback port finder. Run as a script:
`python3 benchhttp.py freeport` prints a free TCP port on 127.0.0.1.
"""
import os
import random
import socket
import sys


def request_bytes(host, port, path):
    """The same request wrk sends: request line plus Host, nothing else."""
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode()


def parse_response(buf):
    """Return (status, total_length) of the first response in buf, or None
    when buf does not yet hold a complete response. Raises ValueError on a
    response without Content-Length (none of the servers sends one)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].split(b"\r\n")
    status = int(head[0].split(b" ", 2)[1])
    length = None
    for line in head[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ValueError("response without Content-Length: %r" % head[0])
    total = end + 4 + length
    if len(buf) < total:
        return None
    return status, total


def tree_pids(root):
    """root and all its descendants (processes, not threads)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_kb(pids):
    """Sum of VmRSS (kB) over pids; processes that vanished count 0."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def fd_count(pids):
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return total


def free_port():
    """A port below the ephemeral range that is free right now, so that
    clients' source ports never collide with it."""
    for _ in range(1000):
        port = random.randrange(20000, 32000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit("benchhttp: no free port found")


if __name__ == "__main__":
    if sys.argv[1:] == ["freeport"]:
        print(free_port())
    else:
        sys.exit("usage: benchhttp.py freeport")
