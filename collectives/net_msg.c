/*
 * net_msg.c -- framed messages on a transport's per-peer byte streams:
 * headers, matching of receives, unexpected messages, progress. See net.h
 * for the framing and matching rules.
 *
 * Receive side of one peer's stream, a small state machine:
 *   HEADER  reading the 16-byte header (rx_hdr_done < 16)
 *   DIRECT  payload into a posted receive (rx_msg)
 *   UNEXP   payload into a pooled buffer (rx_unexp), matched later
 * A lost stream (EOF, reset) marks the peer lost; that fails the
 * communicator as soon as an operation needs that peer, naming it. (A peer
 * that finished its last operation and freed the communicator also ends
 * its streams: that is not a failure while nobody needs it.)
 */
#include "collectives/net.h"
#include "runtime/error.h"
#include "runtime/timer.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int weft_net_link_open(weft_net_link *l, weft_comm *c, const weft_transport *tp)
{
    memset(l, 0, sizeof *l);
    l->tp = tp;
    l->comm = c;
    l->n = c->size;
    l->me = c->rank;
    l->peers = calloc((size_t)c->size, sizeof *l->peers);
    if (!l->peers)
        return weft_error(WEFT_ENOMEM, "%s: communicator '%s': out of memory", tp->name, c->name);
    int rc = tp->open(c, &l->tstate);
    if (rc) {
        free(l->peers);
        l->peers = NULL;
    }
    return rc;
}

static void free_unexp_list(weft_net_unexp *u)
{
    while (u) {
        weft_net_unexp *next = u->next;
        free(u->buf);
        free(u);
        u = next;
    }
}

void weft_net_link_close(weft_net_link *l)
{
    if (l->tstate)
        l->tp->close(l->tstate);
    for (int p = 0; l->peers && p < l->n; p++)
        free_unexp_list(l->peers[p].unexp_head);
    free_unexp_list(l->pool);
    free(l->peers);
    memset(l, 0, sizeof *l);
}

const char *weft_net_peer_name(weft_net_link *l, int peer) { return l->tp->peer_name(l->tstate, peer); }

/* --- posting ------------------------------------------------------------- */

void weft_net_msg_send(weft_net_link *l, weft_net_msg *m, int peer, uint64_t key, const void *buf, size_t len)
{
    weft_net_peer *p = &l->peers[peer];
    m->key = key;
    m->peer = peer;
    m->is_send = 1;
    m->buf = (char *)buf;
    m->len = len;
    m->done = m->hdr_done = 0;
    m->hdr[0] = key;
    m->hdr[1] = len;
    m->complete = 0;
    m->next = NULL;
    if (p->tx_tail)
        p->tx_tail->next = m;
    else
        p->tx_head = m;
    p->tx_tail = m;
}

static void unexp_remove(weft_net_peer *p, weft_net_unexp *u)
{
    weft_net_unexp **pp = &p->unexp_head, *prev = NULL;
    while (*pp && *pp != u) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = u->next;
    if (p->unexp_tail == u)
        p->unexp_tail = prev;
}

static void pool_put(weft_net_link *l, weft_net_unexp *u)
{
    u->next = l->pool;
    l->pool = u;
}

/* A receive completes from a fully arrived unexpected message. */
static void take_unexp(weft_net_link *l, weft_net_peer *p, weft_net_unexp *u, weft_net_msg *m)
{
    if (u->len)
        memcpy(m->buf, u->buf, u->len);
    m->done = u->len;
    m->complete = 1;
    unexp_remove(p, u);
    pool_put(l, u);
}

static int len_mismatch(weft_net_link *l, const weft_net_msg *m, size_t got)
{
    weft_comm *c = l->comm;
    if (m->key & WEFT_NET_COLL)
        return weft_error(WEFT_ECOMM,
                          "communicator '%s': collective message from %s has %zu bytes where %zu were expected: "
                          "ranks called collectives in a different order or with different arguments",
                          c->name, weft_net_peer_name(l, m->peer), got, m->len);
    size_t es = m->esize ? m->esize : 1;
    return weft_error(WEFT_ECOMM, "communicator '%s': recv from rank %d tag %d expected %zu %s elements, got %zu",
                      c->name, m->peer, (int)m->key, m->len / es, m->what ? m->what : "byte", got / es);
}

void weft_net_msg_recv(weft_net_link *l, weft_net_msg *m, int peer, uint64_t key, void *buf, size_t len)
{
    weft_net_peer *p = &l->peers[peer];
    m->key = key;
    m->peer = peer;
    m->is_send = 0;
    m->buf = buf;
    m->len = len;
    m->done = 0;
    m->complete = 0;
    m->next = NULL;
    m->from_unexp = NULL;
    for (weft_net_unexp *u = p->unexp_head; u; u = u->next) {
        if (u->key != key || u->claimed)
            continue;
        if (u->len != len) { /* reported by the next progress call */
            m->from_unexp = u;
            u->claimed = m;
            return;
        }
        if (u->complete)
            take_unexp(l, p, u, m);
        else {
            u->claimed = m;
            m->from_unexp = u;
        }
        return;
    }
    if (p->posted_tail)
        p->posted_tail->next = m;
    else
        p->posted_head = m;
    p->posted_tail = m;
}

/* --- progress ------------------------------------------------------------ */

static int lose(weft_net_link *l, weft_net_peer *p, int rc)
{
    (void)l;
    if (!p->lost) {
        p->lost = rc;
        snprintf(p->lost_why, sizeof p->lost_why, "%s", weft_last_error());
    }
    return 0;
}

static int push_tx(weft_net_link *l, int peer)
{
    weft_net_peer *p = &l->peers[peer];
    while (p->tx_head) {
        weft_net_msg *m = p->tx_head;
        struct iovec iov[2];
        int k = 0;
        if (m->hdr_done < sizeof m->hdr)
            iov[k++] = (struct iovec){(char *)m->hdr + m->hdr_done, sizeof m->hdr - m->hdr_done};
        if (m->done < m->len)
            iov[k++] = (struct iovec){m->buf + m->done, m->len - m->done};
        long got = k ? l->tp->sendv(l->tstate, peer, iov, k) : 0;
        if (got < 0)
            return lose(l, p, (int)got);
        size_t h = sizeof m->hdr - m->hdr_done, g = (size_t)got;
        if (g >= h) {
            m->hdr_done = sizeof m->hdr;
            m->done += g - h;
        } else {
            m->hdr_done += g;
        }
        if (m->hdr_done < sizeof m->hdr || m->done < m->len)
            return 0; /* stream full */
        m->complete = 1;
        p->tx_head = m->next;
        if (!p->tx_head)
            p->tx_tail = NULL;
    }
    return 0;
}

/* A pooled buffer for len bytes: the smallest that fits, else the largest
 * grown, else a new one. Best fit keeps big buffers for big messages, so the
 * pool settles after a few repetitions of the same pattern of operations. */
static weft_net_unexp *pool_get(weft_net_link *l, size_t len)
{
    weft_net_unexp *u, **best = NULL, **big = NULL;
    for (weft_net_unexp **pp = &l->pool; (u = *pp); pp = &u->next) {
        if (u->cap >= len && (!best || u->cap < (*best)->cap))
            best = pp;
        if (!big || u->cap > (*big)->cap)
            big = pp;
    }
    weft_net_unexp **pick = best ? best : big;
    if (pick) {
        u = *pick;
        *pick = u->next;
    } else if (!(u = calloc(1, sizeof *u))) {
        return NULL;
    }
    if (u->cap < len) {
        char *b = realloc(u->buf, len);
        if (!b) {
            pool_put(l, u);
            return NULL;
        }
        u->buf = b;
        u->cap = len;
    }
    u->len = len;
    u->done = 0;
    u->complete = 0;
    u->claimed = NULL;
    u->next = NULL;
    return u;
}

/* A header arrived: route the payload to its receive or a pooled buffer. */
static int route(weft_net_link *l, int peer)
{
    weft_net_peer *p = &l->peers[peer];
    uint64_t key = p->rx_hdr[0], len = p->rx_hdr[1];
    p->rx_hdr_done = 0;
    weft_net_msg *m = p->posted_head, *prev = NULL;
    for (; m; prev = m, m = m->next)
        if (m->key == key)
            break;
    if (m) {
        if (prev)
            prev->next = m->next;
        else
            p->posted_head = m->next;
        if (p->posted_tail == m)
            p->posted_tail = prev;
        if (len != m->len)
            return len_mismatch(l, m, len);
        p->rx_msg = m;
        return 0;
    }
    if (len > ((uint64_t)1 << 40))
        return weft_error(WEFT_ECOMM, "communicator '%s': %s announced a message of %llu bytes: corrupt stream",
                          l->comm->name, weft_net_peer_name(l, peer), (unsigned long long)len);
    weft_net_unexp *u = pool_get(l, len);
    if (!u)
        return weft_error(WEFT_ENOMEM, "communicator '%s': %llu bytes for an early message from %s: out of memory",
                          l->comm->name, (unsigned long long)len, weft_net_peer_name(l, peer));
    u->key = key;
    if (p->unexp_tail)
        p->unexp_tail->next = u;
    else
        p->unexp_head = u;
    p->unexp_tail = u;
    p->rx_unexp = u;
    return 0;
}

static int unexp_done(weft_net_link *l, weft_net_peer *p, weft_net_unexp *u)
{
    u->complete = 1;
    p->rx_unexp = NULL;
    weft_net_msg *m = u->claimed;
    if (!m)
        return 0;
    if (m->len != u->len)
        return len_mismatch(l, m, u->len);
    take_unexp(l, p, u, m);
    return 0;
}

static int pull_rx(weft_net_link *l, int peer)
{
    weft_net_peer *p = &l->peers[peer];
    for (;;) {
        if (p->rx_msg) {
            weft_net_msg *m = p->rx_msg;
            if (m->done < m->len) {
                long got = l->tp->recv(l->tstate, peer, m->buf + m->done, m->len - m->done);
                if (got < 0)
                    return lose(l, p, (int)got);
                if (got == 0)
                    return 0;
                m->done += (size_t)got;
                p->last_rx_ns = weft_now_ns();
            }
            if (m->done == m->len) {
                m->complete = 1;
                p->rx_msg = NULL;
            }
            continue;
        }
        if (p->rx_unexp) {
            weft_net_unexp *u = p->rx_unexp;
            if (u->done < u->len) {
                long got = l->tp->recv(l->tstate, peer, u->buf + u->done, u->len - u->done);
                if (got < 0)
                    return lose(l, p, (int)got);
                if (got == 0)
                    return 0;
                u->done += (size_t)got;
                p->last_rx_ns = weft_now_ns();
            }
            if (u->done == u->len)
                WEFT_CHECK(unexp_done(l, p, u));
            continue;
        }
        long got = l->tp->recv(l->tstate, peer, (char *)p->rx_hdr + p->rx_hdr_done, sizeof p->rx_hdr - p->rx_hdr_done);
        if (got < 0)
            return lose(l, p, (int)got);
        if (got == 0)
            return 0;
        p->last_rx_ns = weft_now_ns();
        p->rx_hdr_done += (size_t)got;
        if (p->rx_hdr_done == sizeof p->rx_hdr)
            WEFT_CHECK(route(l, peer));
    }
}

/* Anything outstanding with this peer? */
static int needs(const weft_net_peer *p)
{
    if (p->tx_head || p->posted_head || p->rx_msg)
        return 1;
    for (const weft_net_unexp *u = p->unexp_head; u; u = u->next)
        if (u->claimed && !u->complete)
            return 1;
    return 0;
}

/* Messages to oneself never touch the transport: each goes to its
 * receive, or waits as an unexpected message like one from a peer. */
static int deliver_self(weft_net_link *l)
{
    weft_net_peer *p = &l->peers[l->me];
    while (p->tx_head) {
        weft_net_msg *m = p->tx_head;
        p->tx_head = m->next;
        if (!p->tx_head)
            p->tx_tail = NULL;
        p->rx_hdr[0] = m->key;
        p->rx_hdr[1] = m->len;
        WEFT_CHECK(route(l, l->me));
        if (p->rx_msg) {
            memcpy(p->rx_msg->buf, m->buf, m->len);
            p->rx_msg->done = m->len;
            p->rx_msg->complete = 1;
            p->rx_msg = NULL;
        } else {
            memcpy(p->rx_unexp->buf, m->buf, m->len);
            p->rx_unexp->done = m->len;
            WEFT_CHECK(unexp_done(l, p, p->rx_unexp));
        }
        m->done = m->len;
        m->complete = 1;
    }
    return 0;
}

/* A peer's invariants (asserted; assert is for bugs, never for input). */
static void peer_check(const weft_net_peer *p)
{
    assert(!p->tx_head == !p->tx_tail);
    assert(!p->posted_head == !p->posted_tail);
    assert(!p->unexp_head == !p->unexp_tail);
    assert(!(p->rx_msg && p->rx_unexp)); /* one payload destination at a time */
    assert(p->rx_hdr_done < sizeof p->rx_hdr || p->rx_msg || p->rx_unexp);
    assert(!p->rx_msg || p->rx_msg->done <= p->rx_msg->len);
    assert(!p->rx_unexp || p->rx_unexp->done <= p->rx_unexp->len);
    (void)p;
}

int weft_net_link_progress(weft_net_link *l)
{
    if (l->tp->poll)
        WEFT_CHECK(l->tp->poll(l->tstate));
    WEFT_CHECK(deliver_self(l));
    for (int peer = 0; peer < l->n; peer++) {
        if (peer == l->me)
            continue;
        weft_net_peer *p = &l->peers[peer];
        if (!p->lost) {
            WEFT_CHECK(push_tx(l, peer));
            WEFT_CHECK(pull_rx(l, peer));
        }
        /* a receive matched to an unexpected message of another length */
        for (weft_net_unexp *u = p->unexp_head; u; u = u->next)
            if (u->claimed && u->claimed->len != u->len)
                return len_mismatch(l, u->claimed, u->len);
        peer_check(p);
        if (p->lost && needs(p))
            return weft_error(WEFT_EPEER, "%s", p->lost_why);
    }
    return 0;
}
