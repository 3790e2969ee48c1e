/*
 * seal.h -- provenance, identity and signatures in checkpoint files: written
 * when a checkpoint is committed (the job's writer, save.c; one process,
 * single.c), read back by weft-ckpt and by --resume / --init-from. The texts
 * themselves are prov.h, the cryptography sign.h; format in
 * docs/checkpoint-format.md ("Provenance, identity and signatures").
 *
 * Callers hold weft_h5_lock (checkpoint/h5.h).
 */
#ifndef WEFT_CHECKPOINT_SEAL_H
#define WEFT_CHECKPOINT_SEAL_H

#include <hdf5.h>
#include <stdint.h>

#include "checkpoint/prov.h"
#include "checkpoint/writer_int.h"

/* The job's writer, once every dataset's checksum is known (collective over
 * the writer's communicator): rank 0 completes the provenance (the run's
 * lines + "time") and, holding a signing key, signs the seal; every rank
 * then writes the same "provenance" and "signature" root attributes. */
int weft_ckpt_seal_job(weft_ckpt *c, hid_t f);

/* One process, after every dataset is written with its xxh3_64: the
 * provenance (prov + "time") as the root attribute, the seal read back
 * from the file itself. No signature (weft-ckpt sign adds one). */
int weft_ckpt_seal_single(hid_t f, const char *path, int64_t step, const char *prov);

/* XXH3-64 over the bytes of the files, one after another (the parent hash
 * of an import: its config.json, then its safetensors files). */
int weft_prov_hash_files(const char *const *paths, int n, uint64_t *out);

/* The seal of an open checkpoint, from its datasets' xxh3_64 attributes,
 * its step and its provenance attribute ("" when it has none: checkpoints
 * from before provenance). malloc'ed. */
int weft_ckpt_seal_read(hid_t f, const char *path, char **seal, size_t *len);
/* XXH3-64 of that seal: the checkpoint's identity. */
int weft_ckpt_identity(hid_t f, const char *path, uint64_t *id);

/* The signature against trusted public keys, attributes only (the data's
 * checksums are a load's or verify's): 0 when it holds; else WEFT_EDATA
 * with one of: "is not signed", "is signed by key K, which is not
 * trusted", "has been modified since it was signed (its checksum table or
 * provenance ...)", "has an invalid signature (corrupt ...)". signer: the
 * key id found (may be NULL). */
int weft_ckpt_sig_check(hid_t f, const char *path, const uint8_t (*trusted)[32], int ntrusted, char signer[17]);

/* The same for a checkpoint file by name (opens it; no data read). Takes
 * weft_h5_lock itself (for the trainer). */
int weft_ckpt_sig_check_file(const char *path, const uint8_t (*trusted)[32], int ntrusted, char signer[17]);

/* The same against a comma-separated list of public key files (keys: as
 * checkpoint.trusted_keys; source names where the list came from, for
 * errors: "checkpoint.trusted_keys", "--trusted"). */
int weft_ckpt_check_trusted(const char *path, const char *keys, const char *source, char signer[17]);

/* Sign a committed file with a secret key file: every checksum verified
 * first, then the signature added to a copy that replaces the file
 * (fsync'd, renamed). */
int weft_ckpt_sign_file(const char *path, const char *keyfile, char signer[17]);

#endif
