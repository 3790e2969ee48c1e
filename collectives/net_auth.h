/*
 * net_auth.h -- SipHash-2-4 with a 128-bit tag: the keyed hash the tcp
 * transport authenticates connections with (a per-communicator secret,
 * challenge-response; see transport_tcp.c). SipHash is a pseudorandom
 * function designed as a MAC for short inputs (Aumasson & Bernstein 2012).
 */
#ifndef WEFT_COLLECTIVES_NET_AUTH_H
#define WEFT_COLLECTIVES_NET_AUTH_H

#include <stddef.h>
#include <stdint.h>

void weft_siphash128(const uint8_t key[16], const void *msg, size_t len, uint8_t out[16]);
/* 1 when the n bytes are equal, in time independent of where they differ. */
int weft_auth_equal(const uint8_t *a, const uint8_t *b, size_t n);

#endif
