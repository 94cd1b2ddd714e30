#!/usr/bin/env python3
"""Send exactly --requests GET requests on one keep-alive connection
(bench/http.sh, for the callgrind instruction counts).

With --depth 1 it waits for each response before sending the next request;
with --depth D it writes D requests at once and then reads D responses
(pipelining). Every response must be 200, else exit status 1. Prints the
number of responses read. The client's own speed does not matter: only the
server runs under callgrind.
"""
import argparse
import socket
import sys

import benchhttp


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/plaintext")
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--depth", type=int, default=1)
    args = ap.parse_args()

    req = benchhttp.request_bytes(args.host, args.port, args.path)
    s = socket.create_connection((args.host, args.port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    done = bad = 0
    while done < args.requests:
        k = min(args.depth, args.requests - done)
        s.sendall(req * k)
        while k:
            got = benchhttp.parse_response(buf)
            if got is None:
                data = s.recv(65536)
                if not data:
                    sys.exit("kaclient: server closed after %d responses" % done)
                buf += data
                continue
            if got[0] != 200:
                bad += 1
            buf = buf[got[1]:]
            done += 1
            k -= 1
    s.close()
    print(done)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
