/*
 * transport_tcp.c -- the tcp transport: one TCP connection per pair of
 * ranks, every one authenticated, non-blocking streams (transport.h).
 *
 * Setup (open, collective over the communicator's MPI handle):
 *   1. each rank listens on an IPv4 address of comm.tcp_ifname (or the
 *      first up non-loopback interface, else loopback), port chosen by the
 *      kernel;
 *   2. rank 0 draws a 128-bit secret from getrandom() and broadcasts it
 *      with the addresses over MPI: only the job's ranks know it;
 *   3. each rank connects to every lower rank and accepts the higher ones.
 * Handshake (SipHash-2-4-128 tags keyed by the secret, fixed sizes):
 *   acceptor  -> connector  CHAL  nonce_a (16)
 *   connector -> acceptor   HELLO "WEFTTCP1", from, to, nonce_c,
 *                                 tag("C" nonce_a from to nonce_c)    (48)
 *   acceptor  -> connector  ACK   tag("A" nonce_c nonce_a from to)     (16)
 * Nothing a connection sends is used as data before its HELLO verified. A
 * connection that fails (wrong magic, tag, rank, a duplicate, 5 s of
 * silence) is closed and logged with its address. The listener stays open
 * for the communicator's life so that a foreign connection arriving later
 * meets the same check instead of a half-open port.
 *
 * A peer whose stream ends (EOF) or resets is reported as WEFT_EPEER,
 * naming its rank and address.
 */
#include "collectives/net_auth.h"
#include "collectives/transport.h"
#include "runtime/error.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "runtime/timer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAGIC "WEFTTCP1"
#define HELLO_BYTES 48
#define HS_NS 5000000000ll      /* a handshake must finish within 5 s */
#define MAX_HS 32               /* connections being checked at once */
#define ACCEPT_EVERY_NS 1000000 /* after setup, look at the listener each ms */

enum { HS_FREE, HS_CONNECTING, HS_WAIT_CHAL, HS_WAIT_ACK, HS_WAIT_HELLO };

typedef struct tcp_addr {
    uint32_t ip;   /* network order */
    uint16_t port; /* network order */
    uint16_t pad;
} tcp_addr;

typedef struct tcp_hs {
    int state, fd, peer;
    struct sockaddr_in remote;
    int64_t t0;
    uint8_t mine[16], theirs[16];
    uint8_t in[HELLO_BYTES];
    size_t got;
} tcp_hs;

typedef struct tcp_state {
    weft_comm *c;
    int n, me, lfd, connected;
    uint8_t key[16];
    tcp_addr *addrs;
    int *fds;
    char (*names)[64];
    tcp_hs hs[MAX_HS];
    int64_t last_accept;
} tcp_state;

/* --- addresses ----------------------------------------------------------- */

static int pick_addr(const char *ifname, struct in_addr *out, char *why, size_t n)
{
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) != 0) {
        snprintf(why, n, "getifaddrs failed: %s", strerror(errno));
        return 0;
    }
    struct in_addr lo = {htonl(INADDR_LOOPBACK)};
    int found = 0;
    char seen[256] = "";
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP))
            continue;
        size_t k = strlen(seen);
        snprintf(seen + k, sizeof seen - k, "%s%s", k ? ", " : "", i->ifa_name);
        struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        if (*ifname ? strcmp(i->ifa_name, ifname) == 0 : !(i->ifa_flags & IFF_LOOPBACK)) {
            *out = a;
            found = 1;
        }
    }
    freeifaddrs(ifs);
    if (!found && !*ifname) {
        *out = lo;
        found = 1;
    }
    if (!found)
        snprintf(why, n, "comm.tcp_ifname = '%s': no up interface of that name with an IPv4 address here "
                 "(up IPv4 interfaces: %s)", ifname, *seen ? seen : "none");
    return found;
}

static int tcp_can_connect(const weft_comm *c, char *why, size_t n)
{
    struct in_addr a;
    return pick_addr(c->opts.tcp_ifname, &a, why, n);
}

static void set_name(tcp_state *t, int peer)
{
    char ip[INET_ADDRSTRLEN];
    struct in_addr a = {t->addrs[peer].ip};
    inet_ntop(AF_INET, &a, ip, sizeof ip);
    snprintf(t->names[peer], sizeof t->names[peer], "rank %d (%s:%u)", peer, ip, ntohs(t->addrs[peer].port));
}

static const char *tcp_peer_name(void *state, int peer) { return ((tcp_state *)state)->names[peer]; }

/* The interface holding the connection's local address: a down one (the
 * link cut at this host: `ip link set DEV down`, or no carrier) means
 * the stall is this host's, however the peer looks from here. */
static void tcp_link_state(void *state, int peer, char *buf, size_t n)
{
    tcp_state *t = state;
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    struct ifaddrs *ifs = NULL;
    buf[0] = '\0';
    if (t->fds[peer] < 0 || getsockname(t->fds[peer], (struct sockaddr *)&me, &len) != 0 ||
        me.sin_family != AF_INET || getifaddrs(&ifs) != 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
        if (!a || a->sin_family != AF_INET || a->sin_addr.s_addr != me.sin_addr.s_addr)
            continue;
        int up = (i->ifa_flags & IFF_UP) != 0, carrier = (i->ifa_flags & IFF_RUNNING) != 0;
        if (!up || !carrier) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &me.sin_addr, ip, sizeof ip);
            snprintf(buf, n, "this host's interface %s (%s) is %s: the link is cut here, at rank %d", i->ifa_name,
                     ip, up ? "up without carrier" : "down", t->c->rank);
        }
        break;
    }
    freeifaddrs(ifs);
}

static void tune(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* --- the handshake -------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* tag(label, x[16], y[16], from, to) */
static void tag(const tcp_state *t, char label, const uint8_t *x, const uint8_t *y, uint32_t from, uint32_t to,
                uint8_t out[16])
{
    uint8_t m[41];
    m[0] = (uint8_t)label;
    memcpy(m + 1, x, 16);
    memcpy(m + 17, y, 16);
    put32(m + 33, from);
    put32(m + 37, to);
    weft_siphash128(t->key, m, sizeof m, out);
}

static void hs_close(tcp_hs *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    h->state = HS_FREE;
}

static void refuse(tcp_state *t, tcp_hs *h, const char *why)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &h->remote.sin_addr, ip, sizeof ip);
    WEFT_WARN("tcp: communicator '%s' rank %d refused a connection from %s:%u: %s; only this job's ranks, "
              "proving the job's secret, may connect", t->c->name, t->me, ip, ntohs(h->remote.sin_port), why);
    hs_close(h);
}

/* Read toward want bytes; 1 complete, 0 not yet, -1 closed or failed. */
static int fill(tcp_hs *h, size_t want)
{
    while (h->got < want) {
        ssize_t k = recv(h->fd, h->in + h->got, want - h->got, MSG_DONTWAIT);
        if (k > 0)
            h->got += (size_t)k;
        else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        else
            return -1;
    }
    return 1;
}

static int put_all(int fd, const void *b, size_t n)
{
    return send(fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static void connected(tcp_state *t, tcp_hs *h, int peer)
{
    t->fds[peer] = h->fd;
    t->connected++;
    h->fd = -1;
    h->state = HS_FREE;
}

/* Acceptor: verify HELLO, answer ACK. */
static void acceptor_step(tcp_state *t, tcp_hs *h)
{
    int r = fill(h, HELLO_BYTES);
    if (r < 0)
        return refuse(t, h, "it closed before completing the handshake");
    if (r == 0)
        return;
    uint32_t from = get32(h->in + 8), to = get32(h->in + 12);
    uint8_t want[16], ack[16];
    if (memcmp(h->in, MAGIC, 8) != 0)
        return refuse(t, h, "it did not speak weft's protocol (bad magic)");
    tag(t, 'C', h->mine, h->in + 16, from, to, want);
    if (!weft_auth_equal(want, h->in + 32, 16))
        return refuse(t, h, "authentication failed (wrong secret: another job or a stranger)");
    if (to != (uint32_t)t->me || from >= (uint32_t)t->n || from <= (uint32_t)t->me)
        return refuse(t, h, "it claimed a rank that does not connect to this one");
    if (t->fds[from] >= 0)
        return refuse(t, h, "that rank is connected already");
    tag(t, 'A', h->in + 16, h->mine, from, to, ack);
    if (put_all(h->fd, ack, sizeof ack) != 0)
        return refuse(t, h, "it closed during the handshake");
    connected(t, h, (int)from);
}

/* Connector: connect, read CHAL, send HELLO, verify ACK. <0: setup fails. */
static int connector_step(tcp_state *t, tcp_hs *h)
{
    weft_comm *c = t->c;
    if (h->state == HS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        struct pollfd p = {h->fd, POLLOUT, 0};
        if (poll(&p, 1, 0) <= 0)
            return 0;
        getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
            return weft_error(WEFT_EPEER, "tcp: communicator '%s': rank %d cannot connect to %s: %s", c->name,
                              t->me, t->names[h->peer], strerror(err));
        h->state = HS_WAIT_CHAL;
    }
    if (h->state == HS_WAIT_CHAL) {
        int r = fill(h, 16);
        if (r < 0)
            return weft_error(WEFT_EPEER, "tcp: communicator '%s': %s closed the connection during the handshake",
                              c->name, t->names[h->peer]);
        if (r == 0)
            return 0;
        memcpy(h->theirs, h->in, 16);
        uint8_t hello[HELLO_BYTES];
        memcpy(hello, MAGIC, 8);
        put32(hello + 8, (uint32_t)t->me);
        put32(hello + 12, (uint32_t)h->peer);
        memcpy(hello + 16, h->mine, 16);
        tag(t, 'C', h->theirs, h->mine, (uint32_t)t->me, (uint32_t)h->peer, hello + 32);
        if (put_all(h->fd, hello, sizeof hello) != 0)
            return weft_error(WEFT_EPEER, "tcp: communicator '%s': sending the handshake to %s failed", c->name,
                              t->names[h->peer]);
        h->got = 0;
        h->state = HS_WAIT_ACK;
    }
    int r = fill(h, 16);
    if (r < 0)
        return weft_error(WEFT_EPEER, "tcp: communicator '%s': %s refused the handshake", c->name, t->names[h->peer]);
    if (r == 0)
        return 0;
    uint8_t want[16];
    tag(t, 'A', h->mine, h->theirs, (uint32_t)t->me, (uint32_t)h->peer, want);
    if (!weft_auth_equal(want, h->in, 16))
        return weft_error(WEFT_EPEER, "tcp: communicator '%s': whatever answers at %s does not know the job's "
                          "secret: not our rank", c->name, t->names[h->peer]);
    connected(t, h, h->peer);
    return 0;
}

static tcp_hs *hs_slot(tcp_state *t)
{
    for (int i = 0; i < MAX_HS; i++)
        if (t->hs[i].state == HS_FREE) {
            memset(&t->hs[i], 0, sizeof t->hs[i]);
            t->hs[i].fd = -1;
            t->hs[i].t0 = weft_now_ns();
            if (getrandom(t->hs[i].mine, 16, 0) != 16)
                return NULL; /* no fresh nonce, no handshake */
            return &t->hs[i];
        }
    return NULL;
}

static void accept_new(tcp_state *t)
{
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        int fd = accept4(t->lfd, (struct sockaddr *)&from, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        tcp_hs *h = hs_slot(t);
        tcp_hs tmp = {.fd = fd, .remote = from};
        if (!h) {
            refuse(t, &tmp, "too many connections being checked at once");
            continue;
        }
        h->fd = fd;
        h->remote = from;
        h->peer = -1;
        h->state = HS_WAIT_HELLO;
        if (put_all(fd, h->mine, 16) != 0)
            refuse(t, h, "it closed at once");
    }
}

/* One pass over the listener and every handshake in progress. */
static int service(tcp_state *t)
{
    accept_new(t);
    int64_t now = weft_now_ns();
    for (int i = 0; i < MAX_HS; i++) {
        tcp_hs *h = &t->hs[i];
        if (h->state == HS_FREE)
            continue;
        if (h->state == HS_WAIT_HELLO) {
            acceptor_step(t, h);
            if (h->state != HS_FREE && now - h->t0 > HS_NS)
                refuse(t, h, "it sent no valid handshake within 5 s");
        } else {
            WEFT_CHECK(connector_step(t, h));
        }
    }
    return 0;
}

/* --- open / close -------------------------------------------------------- */

static int listen_on(tcp_state *t, tcp_addr *me)
{
    weft_comm *c = t->c;
    struct in_addr ip;
    char why[320];
    if (!pick_addr(c->opts.tcp_ifname, &ip, why, sizeof why))
        return weft_error(WEFT_ECONFIG, "tcp: communicator '%s' rank %d: %s", c->name, c->rank, why);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = ip, .sin_port = 0};
    socklen_t len = sizeof sa;
    t->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->lfd < 0 || bind(t->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(t->lfd, 128) != 0 ||
        getsockname(t->lfd, (struct sockaddr *)&sa, &len) != 0) {
        char ipstr[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &ip, ipstr, sizeof ipstr);
        return weft_error(WEFT_ECOMM, "tcp: communicator '%s' rank %d cannot listen on %s: %s", c->name, c->rank,
                          ipstr, strerror(errno));
    }
    me->ip = sa.sin_addr.s_addr;
    me->port = sa.sin_port;
    char ipstr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, ipstr, sizeof ipstr);
    WEFT_DEBUG("tcp: communicator '%s' rank %d listening on %s:%u", c->name, c->rank, ipstr, ntohs(sa.sin_port));
    return 0;
}

/* Share secret and addresses; rc of this rank in, agreement out. */
static int exchange(tcp_state *t, int rc, tcp_addr *me)
{
    weft_comm *c = t->c;
    if (c->rank == 0 && getrandom(t->key, sizeof t->key, 0) != (ssize_t)sizeof t->key)
        rc = rc ? rc : weft_error(WEFT_EIO, "tcp: getrandom failed: %s", strerror(errno));
    int ok = rc == 0, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    if (!all)
        return rc ? rc : weft_error(WEFT_ECOMM, "tcp: communicator '%s': another rank could not listen", c->name);
    MPI_Bcast(t->key, sizeof t->key, MPI_BYTE, 0, c->mpi);
    MPI_Allgather(me, sizeof *me, MPI_BYTE, t->addrs, sizeof *me, MPI_BYTE, c->mpi);
    for (int j = 0; j < t->n; j++)
        set_name(t, j);
    return 0;
}

static int dial(tcp_state *t, int peer)
{
    tcp_hs *h = hs_slot(t);
    if (!h)
        return weft_error(WEFT_EINTERNAL, "tcp: too many connections in setup");
    h->peer = peer;
    h->remote = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr = {t->addrs[peer].ip},
                                     .sin_port = t->addrs[peer].port};
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->fd < 0 || (connect(h->fd, (struct sockaddr *)&h->remote, sizeof h->remote) != 0 && errno != EINPROGRESS))
        return weft_error(WEFT_EPEER, "tcp: communicator '%s': rank %d cannot connect to %s: %s", t->c->name, t->me,
                          t->names[peer], strerror(errno));
    h->state = HS_CONNECTING;
    return 0;
}

static int missing(tcp_state *t, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int j = 0; j < t->n && k + 80 < n; j++)
        if (j != t->me && t->fds[j] < 0)
            k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? ", " : "", t->names[j]);
    return 0;
}

static int connect_all(tcp_state *t)
{
    weft_comm *c = t->c;
    /* Dial lower ranks a few at a time, so the handshake slots suffice. */
    int next = 0;
    int64_t deadline = weft_now_ns() + (int64_t)(c->opts.timeout_s * 1e9);
    while (t->connected < t->n - 1) {
        int busy = 0;
        for (int i = 0; i < MAX_HS; i++)
            busy += t->hs[i].state != HS_FREE && t->hs[i].state != HS_WAIT_HELLO;
        while (next < t->me && busy < MAX_HS / 2) {
            WEFT_CHECK(dial(t, next++));
            busy++;
        }
        WEFT_CHECK(service(t));
        if (weft_now_ns() > deadline) {
            char m[1024];
            missing(t, m, sizeof m);
            return weft_error(WEFT_ETIMEDOUT, "tcp: communicator '%s': rank %d could not connect within "
                              "comm.timeout = %g s to %s", c->name, t->me, c->opts.timeout_s, m);
        }
        struct pollfd p = {t->lfd, POLLIN, 0};
        poll(&p, 1, 1);
    }
    return 0;
}

static void tcp_close(void *state)
{
    tcp_state *t = state;
    if (!t)
        return;
    for (int j = 0; t->fds && j < t->n; j++)
        if (t->fds[j] >= 0)
            close(t->fds[j]);
    for (int i = 0; i < MAX_HS; i++)
        if (t->hs[i].state != HS_FREE)
            hs_close(&t->hs[i]);
    if (t->lfd >= 0)
        close(t->lfd);
    free(t->addrs);
    free(t->fds);
    free(t->names);
    free(t);
}

static int tcp_open(weft_comm *c, void **state)
{
    tcp_state *t = calloc(1, sizeof *t);
    if (!t)
        return weft_error(WEFT_ENOMEM, "tcp: out of memory");
    t->c = c;
    t->n = c->size;
    t->me = c->rank;
    t->lfd = -1;
    t->addrs = calloc((size_t)t->n, sizeof *t->addrs);
    t->fds = malloc((size_t)t->n * sizeof *t->fds);
    t->names = calloc((size_t)t->n, sizeof *t->names);
    for (int i = 0; i < MAX_HS; i++)
        t->hs[i].fd = -1;
    int rc = t->addrs && t->fds && t->names ? 0 : weft_error(WEFT_ENOMEM, "tcp: out of memory");
    for (int j = 0; rc == 0 && j < t->n; j++)
        t->fds[j] = -1;
    tcp_addr me = {0};
    if (rc == 0)
        rc = listen_on(t, &me);
    rc = exchange(t, rc, &me);
    if (rc == 0)
        rc = connect_all(t);
    /* Everyone connected, or everyone gives up together. */
    int ok = rc == 0, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, c->mpi);
    if (!all) {
        if (rc == 0)
            rc = weft_error(WEFT_ECOMM, "tcp: communicator '%s': another rank failed to connect", c->name);
        tcp_close(t);
        return rc;
    }
    for (int j = 0; j < t->n; j++)
        if (t->fds[j] >= 0)
            tune(t->fds[j]);
    *state = t;
    return 0;
}

/* --- streams -------------------------------------------------------------- */

static long lost(tcp_state *t, int peer, const char *what, int err)
{
    if (err == 0)
        return weft_error(WEFT_EPEER, "tcp: communicator '%s': %s closed its connection (its process ended or "
                          "failed)", t->c->name, t->names[peer]);
    return weft_error(WEFT_EPEER, "tcp: communicator '%s': %s %s failed: %s (its process ended or its host is "
                      "unreachable)", t->c->name, what, t->names[peer], strerror(err));
}

static long tcp_sendv(void *state, int peer, const struct iovec *iov, int iovcnt)
{
    tcp_state *t = state;
    if (weft_fault_at(WEFT_FAULT_TCP_SEND, -1)) { /* close_tcp: as if the link to this peer broke */
        WEFT_WARN("fault injected: close_tcp (WEFT_FAULT): shutting down the connection to %s", t->names[peer]);
        shutdown(t->fds[peer], SHUT_RDWR);
    }
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t k = sendmsg(t->fds[peer], &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k >= 0)
        return (long)k;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    return lost(t, peer, "sending to", errno);
}

static long tcp_recv(void *state, int peer, void *buf, size_t n)
{
    tcp_state *t = state;
    ssize_t k = recv(t->fds[peer], buf, n, MSG_DONTWAIT);
    if (k > 0)
        return (long)k;
    if (k == 0)
        return n ? lost(t, peer, "", 0) : 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    return lost(t, peer, "receiving from", errno);
}

static int tcp_poll(void *state)
{
    tcp_state *t = state;
    int64_t now = weft_now_ns();
    if (now - t->last_accept < ACCEPT_EVERY_NS)
        return 0;
    t->last_accept = now;
    return service(t);
}

const weft_transport weft_transport_tcp = {
    .name = "tcp",
    .can_connect = tcp_can_connect,
    .open = tcp_open,
    .close = tcp_close,
    .sendv = tcp_sendv,
    .recv = tcp_recv,
    .poll = tcp_poll,
    .peer_name = tcp_peer_name,
    .link_state = tcp_link_state,
};
