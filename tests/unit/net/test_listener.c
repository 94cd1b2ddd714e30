/*
 * test_listener.c - unit tests for src/net/listener.c: address parsing
 * (IPv4, IPv6 in brackets, ":PORT", "localhost", the port range, malformed
 * input) and listening sockets (flags, SO_REUSEPORT sharing, -EADDRINUSE
 * against a socket that did not opt in, a listener that really accepts).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/listener.h"

/* A port nobody listens on right now: bind port 0, read it, close. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void parse_ok(const char *text, int family, const char *ip, int port, const char *canon)
{
    hp_listener_addr_t a;
    memset(&a, 0xa5, sizeof a);
    assert_int_equal(hp_listener_addr_parse(text, &a), 0);
    assert_int_equal(a.ss.ss_family, family);
    char buf[INET6_ADDRSTRLEN];
    if (family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&a.ss;
        assert_int_equal(a.len, sizeof *s);
        assert_int_equal(ntohs(s->sin_port), port);
        assert_non_null(inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf));
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a.ss;
        assert_int_equal(a.len, sizeof *s);
        assert_int_equal(ntohs(s->sin6_port), port);
        assert_non_null(inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf));
    }
    assert_string_equal(buf, ip);
    assert_string_equal(a.text, canon);
}

static void parse_bad(const char *text)
{
    hp_listener_addr_t a;
    if (hp_listener_addr_parse(text, &a) != -EINVAL)
        fail_msg("\"%s\" was accepted", text);
}

static void test_parse_valid(void **state)
{
    (void)state;
    parse_ok("127.0.0.1:8080", AF_INET, "127.0.0.1", 8080, "127.0.0.1:8080");
    parse_ok("0.0.0.0:1", AF_INET, "0.0.0.0", 1, "0.0.0.0:1");
    parse_ok("10.1.2.3:65535", AF_INET, "10.1.2.3", 65535, "10.1.2.3:65535");
    parse_ok(":8080", AF_INET, "0.0.0.0", 8080, "0.0.0.0:8080");
    parse_ok("localhost:1", AF_INET, "127.0.0.1", 1, "127.0.0.1:1");
    parse_ok("[::1]:80", AF_INET6, "::1", 80, "[::1]:80");
    parse_ok("[::]:443", AF_INET6, "::", 443, "[::]:443");
    parse_ok("[fe80::1:2]:9", AF_INET6, "fe80::1:2", 9, "[fe80::1:2]:9");
}

/* The text form is documented as canonical: the same address written two
 * ways must print the same. */
static void test_parse_canonical_text(void **state)
{
    (void)state;
    parse_ok("127.0.0.1:080", AF_INET, "127.0.0.1", 80, "127.0.0.1:80");
    parse_ok("[0:0:0:0:0:0:0:1]:80", AF_INET6, "::1", 80, "[::1]:80");
}

static void test_parse_invalid(void **state)
{
    (void)state;
    /* ports */
    parse_bad("127.0.0.1:0");
    parse_bad("127.0.0.1:65536");
    parse_bad("127.0.0.1:99999999999999999999");
    parse_bad("127.0.0.1:abc");
    parse_bad("127.0.0.1:80a");
    parse_bad("127.0.0.1:-1");
    parse_bad("127.0.0.1:+80");
    parse_bad("127.0.0.1: 80");
    parse_bad("127.0.0.1:");
    parse_bad("[::1]:0");
    parse_bad("[::1]:65536");
    parse_bad("[::1]:");
    /* missing port */
    parse_bad("127.0.0.1");
    parse_bad("localhost");
    parse_bad("[::1]");
    parse_bad("[::1]80");
    parse_bad("");
    parse_bad(":");
    /* hosts */
    parse_bad("example.com:80");
    parse_bad("localhost.:80");
    parse_bad("256.0.0.1:80");
    parse_bad("1.2.3:80");
    parse_bad("::1:80");         /* IPv6 needs brackets */
    parse_bad("[127.0.0.1]:80"); /* brackets are for IPv6 */
    parse_bad("[::1:80");
    parse_bad("[zz::1]:80");
    parse_bad("[]:80");
    parse_bad("garbage");
    parse_bad("\x01\x02:80");
    /* a host longer than any address */
    char big[200];
    memset(big, '1', sizeof big);
    memcpy(big + sizeof big - 4, ":80", 4);
    parse_bad(big);
    big[0] = '[';
    memcpy(big + sizeof big - 5, "]:80", 5);
    parse_bad(big);
}

static void test_open_flags_and_accept(void **state)
{
    (void)state;
    int port = free_port();
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%d", port);
    hp_listener_addr_t a;
    assert_int_equal(hp_listener_addr_parse(text, &a), 0);
    int fd = hp_listener_open(&a, 16);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    int v = 0;
    socklen_t vl = sizeof v;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &v, &vl), 0);
    assert_true(v);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl), 0);
    assert_true(v);

    /* no client yet: a non-blocking accept says EAGAIN */
    assert_int_equal(accept(fd, NULL, NULL), -1);
    assert_int_equal(errno, EAGAIN);
    int cl = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(cl, (struct sockaddr *)&a.ss, a.len), 0);
    /* wait for the listener to be readable rather than sleeping: the
     * timeout only ends a broken test */
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 10000), 1);
    int s = accept(fd, NULL, NULL);
    assert_true(s >= 0);
    close(s);
    close(cl);

    /* a second SO_REUSEPORT listener on the same address: allowed */
    int fd2 = hp_listener_open(&a, 16);
    assert_true(fd2 >= 0);
    close(fd2);
    close(fd);
}

static void test_open_in_use(void **state)
{
    (void)state;
    int port = free_port();
    int other = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(other >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(other, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(other, 4), 0);
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%d", port);
    hp_listener_addr_t a;
    assert_int_equal(hp_listener_addr_parse(text, &a), 0);
    assert_int_equal(hp_listener_open(&a, 16), -EADDRINUSE);
    /* all interfaces overlap the loopback binding too */
    snprintf(text, sizeof text, ":%d", port);
    assert_int_equal(hp_listener_addr_parse(text, &a), 0);
    assert_int_equal(hp_listener_open(&a, 16), -EADDRINUSE);
    close(other);
    /* once it is gone the port can be had */
    snprintf(text, sizeof text, "127.0.0.1:%d", port);
    assert_int_equal(hp_listener_addr_parse(text, &a), 0);
    int fd = hp_listener_open(&a, 16);
    assert_true(fd >= 0);
    close(fd);
}

static void test_open_ipv6_loopback(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0)
        skip();
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = bind(probe, (struct sockaddr *)&s6, sizeof s6);
    socklen_t len = sizeof s6;
    if (ok == 0)
        ok = getsockname(probe, (struct sockaddr *)&s6, &len);
    close(probe);
    if (ok != 0)
        skip(); /* no IPv6 loopback here */
    char text[32];
    snprintf(text, sizeof text, "[::1]:%d", ntohs(s6.sin6_port));
    hp_listener_addr_t a;
    assert_int_equal(hp_listener_addr_parse(text, &a), 0);
    int fd = hp_listener_open(&a, 8);
    assert_true(fd >= 0);
    close(fd);
}

static void test_open_not_available(void **state)
{
    (void)state;
    /* an address this host does not have (TEST-NET-3) */
    hp_listener_addr_t a;
    assert_int_equal(hp_listener_addr_parse("203.0.113.7:8080", &a), 0);
    assert_int_equal(hp_listener_open(&a, 8), -EADDRNOTAVAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_canonical_text),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_open_flags_and_accept),
        cmocka_unit_test(test_open_in_use),
        cmocka_unit_test(test_open_ipv6_loopback),
        cmocka_unit_test(test_open_not_available),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
