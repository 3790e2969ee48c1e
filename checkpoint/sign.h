/*
 * sign.h -- Ed25519 keys and signatures of checkpoint seals, on Debian's
 * libsodium (crypto_sign_*). The text forms (key files, the signature
 * attribute) are prov.h; putting a signature in a file and checking one is
 * seal.h.
 *
 * A secret key file must not be readable by group or others (as ssh
 * requires of its keys): a key that is gets WEFT_ECONFIG naming its mode.
 */
#ifndef WEFT_CHECKPOINT_SIGN_H
#define WEFT_CHECKPOINT_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* The most keys checkpoint.trusted_keys / --trusted may list. */
#define WEFT_SIGN_MAX_TRUSTED 32

/* Write a new key pair: path (secret, mode 0600) and path.pub (public,
 * 0644). Refuses to overwrite either (WEFT_EINVAL). */
int weft_sign_keygen(const char *path, uint8_t pk[32]);

/* Load a secret key file (its public half into pk) or a public one. */
int weft_sign_load_secret(const char *path, uint8_t sk[64], uint8_t pk[32]);
int weft_sign_load_public(const char *path, uint8_t pk[32]);
/* Public keys from a comma-separated list of files (checkpoint.trusted_keys,
 * repeated --trusted): *n of them. */
int weft_sign_load_trusted(const char *list, uint8_t (*pk)[32], int *n);

/* Ed25519 over msg. */
int weft_sign(const uint8_t sk[64], const void *msg, size_t len, uint8_t sig[64]);
/* 1 if sig is pk's signature of msg. */
int weft_sign_ok(const uint8_t pk[32], const void *msg, size_t len, const uint8_t sig[64]);

#endif
