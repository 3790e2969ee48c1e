/*
 * transport.h -- the narrow point-to-point interface the native network
 * backends (tcp, ib) are built on. A transport moves bytes on one ordered,
 * reliable stream per peer and knows nothing of messages, tags or
 * collectives; net_msg.c frames messages on those streams and the
 * algorithms (algo_*.c) are written once against weft_net_msg, never naming a
 * transport (NCCL's ncclTransport, Redis' ConnectionType).
 *
 * Every call but open/close is non-blocking: it moves what it can now and
 * returns. A transport reports a lost peer as WEFT_EPEER with a message
 * naming the peer's rank and address.
 */
#ifndef WEFT_COLLECTIVES_TRANSPORT_H
#define WEFT_COLLECTIVES_TRANSPORT_H

#include <stddef.h>
#include <sys/uio.h>

#include "collectives/backend.h"

typedef struct weft_transport {
    const char *name;
    /* Can this machine serve the group with this transport? 1 yes, 0 no
     * (then why says what is missing). Local only: no communication. */
    int (*can_connect)(const weft_comm *c, char *why, size_t whylen);
    /* Connect every pair of ranks; collective over c->mpi. */
    int (*open)(weft_comm *c, void **state);
    void (*close)(void *state);
    /* Queue up to the iovecs' bytes on the stream to peer: bytes taken
     * (0 when the stream is full), or <0 on failure. */
    long (*sendv)(void *state, int peer, const struct iovec *iov, int iovcnt);
    /* Up to n bytes of the stream from peer: bytes read (0: none now), or
     * <0 on failure; a peer that closed its end is WEFT_EPEER. */
    long (*recv)(void *state, int peer, void *buf, size_t n);
    /* Housekeeping between calls (foreign connections, credits). <0 fatal. */
    int (*poll)(void *state);
    /* "rank 2 (10.0.0.3:40123)" for messages. */
    const char *(*peer_name)(void *state, int peer);
    /* Optional: for a stalled stream to peer, whether this host's own end
     * of the path is down ("this host's interface eth1 (10.0.0.2) is down:
     * ..."); "" when it looks up (the trouble is then the peer's or the
     * network's). Local only: no communication. */
    void (*link_state)(void *state, int peer, char *buf, size_t n);
} weft_transport;

extern const weft_transport weft_transport_tcp;
extern const weft_transport weft_transport_ib;

#endif
