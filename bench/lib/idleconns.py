#!/usr/bin/env python3
"""Measure server RSS per idle keep-alive connection (bench/http.sh).

Opens --count connections to the server, sends one request on each and reads
its response (so the server has accepted, parsed and answered on every one,
and holds it as an idle keep-alive connection), waits --settle seconds, and
compares the summed VmRSS of the server's process tree (--pid and its
descendants) before and after. At most --concurrency connections are being
set up at once, so the listen backlog never overflows. Prints key=value
lines; exit status 1 if not every connection could be opened.
The caller pins this process to the client CPU (taskset).
"""
import argparse
import errno
import resource
import select
import selectors
import socket
import sys
import time

import benchhttp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/plaintext")
    ap.add_argument("--pid", type=int, required=True, help="server root pid")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.count + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit("idleconns: fd limit %d < %d needed (raise ulimit -n)" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    pids = benchhttp.tree_pids(args.pid)
    rss_before = benchhttp.rss_kb(pids)
    fds_before = benchhttp.fd_count(pids)
    req = benchhttp.request_bytes(args.host, args.port, args.path)
    addr = (args.host, args.port)

    sel = selectors.EpollSelector()
    idle = []
    started = errors = bad_status = 0
    inflight = 0
    t0 = time.monotonic()
    deadline = t0 + args.timeout
    while len(idle) < args.count:
        while inflight < args.concurrency and started < args.count + errors:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex(addr)
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                errors += 1
                continue
            sel.register(s, selectors.EVENT_WRITE, [b"", False])
            started += 1
            inflight += 1
        if time.monotonic() > deadline:
            break
        if errors > args.count // 10 + 10:
            break
        for key, _ in sel.select(timeout=1.0):
            s, st = key.fileobj, key.data
            try:
                if not st[1]:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect")
                    s.send(req)
                    st[1] = True
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                data = s.recv(65536)
                if not data:
                    raise OSError(errno.ECONNRESET, "closed before response")
                st[0] += data
                got = benchhttp.parse_response(st[0])
                if got is None:
                    continue
                if got[0] != 200:
                    bad_status += 1
                sel.unregister(s)
                inflight -= 1
                idle.append(s)
            except OSError:
                sel.unregister(s)
                s.close()
                inflight -= 1
                errors += 1
    open_secs = time.monotonic() - t0
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()

    time.sleep(args.settle)
    pids = benchhttp.tree_pids(args.pid)
    rss_after = benchhttp.rss_kb(pids)
    fds_after = benchhttp.fd_count(pids)

    # Did the server keep every connection? A closed one polls readable.
    ep = select.epoll(len(idle) + 1)
    for s in idle:
        ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    closed = len(ep.poll(0, len(idle) + 1)) if idle else 0
    ep.close()

    n = len(idle)
    print("count=%d" % args.count)
    print("opened=%d" % n)
    print("errors=%d" % errors)
    print("bad_status=%d" % bad_status)
    print("closed_by_server=%d" % closed)
    print("open_seconds=%.2f" % open_secs)
    print("rss_before_kb=%d" % rss_before)
    print("rss_after_kb=%d" % rss_after)
    print("server_fds_before=%d" % fds_before)
    print("server_fds_after=%d" % fds_after)
    if n:
        print("bytes_per_conn=%.1f" % ((rss_after - rss_before) * 1024.0 / n))
    for s in idle:
        s.close()
    return 0 if n == args.count and closed == 0 and bad_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
