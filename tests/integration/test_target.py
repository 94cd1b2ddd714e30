"""The request-target over raw sockets (RFC 9112 §3.2): which forms the
server takes for which method, that every other target is a 400 with
`Connection: close` and a closed connection, and that the redirect from a
directory named without its '/' never leaves the server, whatever the
target looked like.
"""

import pytest

from conftest import INDEX_HTML, SUB_INDEX_HTML
from helpers import PLAINTEXT_BODY
from test_framing import assert_rejected


def raw(method, target, extra=b""):
    if isinstance(target, str):
        target = target.encode("latin-1")
    return (method.encode() + b" " + target + b" HTTP/1.1\r\nHost: x\r\n"
            + extra + b"\r\n")


def send(server, method, target):
    with server.conn() as c:
        c.send(raw(method, target))
        return c.read_response(head=(method == "HEAD"))


# -- accepted forms --------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/plaintext",
    "/plaintext?a=1&b=/c?d:@%20",
    "http://localhost/plaintext",
    "HTTPS://localhost:8443/plaintext?x",
    "http://127.0.0.1:1/plaintext",
    "http://[::1]/plaintext",
    "http://[v1.x]/plaintext",
])
def test_route_by_every_accepted_form(server, target):
    resp = send(server, "GET", target)
    assert resp.status == 200 and resp.body == PLAINTEXT_BODY, resp


def test_absolute_form_without_path_is_the_root(server):
    for target in ("http://localhost", "http://localhost?x=1"):
        resp = send(server, "GET", target)
        assert resp.status == 200 and resp.body == INDEX_HTML, (target, resp)


def test_options_asterisk(server):
    with server.conn() as c:
        c.send(raw("OPTIONS", "*"))
        resp = c.read_response()
        assert resp.status == 200
        assert "OPTIONS" in resp.header("Allow")
        # The connection stays usable.
        assert c.request("GET", "/plaintext").body == PLAINTEXT_BODY


def test_connect_authority_form_not_implemented(server):
    """A well-formed CONNECT is a method the server does not implement:
    501 and close, as for an unknown method."""
    for target in ("example.com:443", "[::1]:443", "127.0.0.1:80"):
        with server.conn() as c:
            c.send(raw("CONNECT", target))
            assert_rejected(c, 501)


# -- rejected targets --------------------------------------------------------

REJECTED = [
    # byte classes and pct-encoded
    ("GET", "/a#frag"),
    ("GET", "/a?b#frag"),
    ("GET", "/a%2"),
    ("GET", "/a%zz"),
    ("GET", "/%"),
    ("GET", "/a\\b"),
    ("GET", "/\\evil.example"),
    ("GET", "/{x}"),
    ("GET", "/a|b"),
    ("GET", "/a^b"),
    ("GET", "/a`b"),
    ("GET", '/a"b'),
    ("GET", "/a<b>"),
    ("GET", "/a[0]"),
    ("GET", "/?q=[0]"),
    # absolute-form: other schemes, no authority, no host, userinfo
    ("GET", "ftp://localhost/plaintext"),
    ("GET", "urn:isbn:0451450523"),
    ("GET", "http:/plaintext"),
    ("GET", "http:///plaintext"),
    ("GET", "http://:80/plaintext"),
    ("GET", "http://user:pw@localhost/plaintext"),
    ("GET", "http://[::1/plaintext"),
    ("GET", "http://[1::2::3]/plaintext"),
    ("GET", "http://[::256.0.0.1]/plaintext"),
    ("GET", "http://h:8o/plaintext"),
    ("GET", "http://h/plaintext#f"),
    # neither a path nor a URI
    ("GET", "plaintext"),
    ("GET", "localhost:80"),
    # asterisk-form for anything but OPTIONS
    ("GET", "*"),
    ("HEAD", "*"),
    ("POST", "*"),
    ("OPTIONS", "**"),
    # authority-form for anything but CONNECT, and malformed for CONNECT
    ("OPTIONS", "localhost:80"),
    ("CONNECT", "/"),
    ("CONNECT", "*"),
    ("CONNECT", "example.com"),
    ("CONNECT", "example.com:"),
    ("CONNECT", ":443"),
    ("CONNECT", "http://example.com:443/"),
    ("CONNECT", "user@example.com:443"),
]


@pytest.mark.parametrize("method,target", REJECTED,
                         ids=["%s %s" % r for r in REJECTED])
def test_rejected_target(server, method, target):
    with server.conn() as c:
        c.send(raw(method, target))
        assert_rejected(c, 400)


def test_rejected_target_after_a_good_request(server):
    with server.conn() as c:
        c.send(raw("GET", "/plaintext") + raw("GET", "/a%zz"))
        assert c.read_response().body == PLAINTEXT_BODY
        assert_rejected(c, 400)


# -- directory redirects stay on this server --------------------------------

@pytest.mark.parametrize("method,target,location", [
    ("GET", "/sub", "/sub/"),
    ("GET", "//sub", "/sub/"),
    ("GET", "///sub?x=1", "/sub/?x=1"),
    ("HEAD", "//sub", "/sub/"),
    ("GET", "/.//sub", "/sub/"),
    ("GET", "/sub/..//sub", "/sub/"),
    ("GET", "//./sub", "/sub/"),
    ("GET", "/%73ub", "/sub/"),
    ("GET", "//nosindex", "/nosindex/"),
    ("GET", "http://localhost//sub", "/sub/"),
    ("GET", "http://evil.example//sub?y", "/sub/?y"),
])
def test_directory_redirect_stays_on_server(server, method, target, location):
    resp = send(server, method, target)
    assert resp.status == 301, resp
    loc = resp.header("Location")
    assert loc == location, resp
    assert not loc.startswith("//") and "\\" not in loc


def test_directory_redirect_encodes_the_name(server):
    """A directory whose name holds bytes a path may not carry raw comes
    back percent-encoded (and '%' itself as %25)."""
    (server.root / "a b%").mkdir()
    (server.root / "a b%" / "index.html").write_bytes(SUB_INDEX_HTML)
    resp = send(server, "GET", "//a%20b%25")
    assert resp.status == 301 and resp.header("Location") == "/a%20b%25/", resp
    follow = send(server, "GET", resp.header("Location"))
    assert follow.status == 200 and follow.body == SUB_INDEX_HTML


@pytest.mark.parametrize("target", ["/%2F%2Fsub", "/%2fsub", "/%5Csub",
                                    "/\\sub", "/\\\\sub"])
def test_encoded_or_backslash_slashes_never_redirect(server, target):
    resp = send(server, "GET", target)
    assert resp.status in (400, 404), resp
    assert resp.header("Location") is None
