/*
 * sign.c -- Ed25519 keys and signatures on libsodium (see sign.h).
 */
#include "checkpoint/sign.h"
#include "checkpoint/prov.h"
#include "data/atomic_file.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int init(void)
{
    if (sodium_init() < 0)
        return weft_error(WEFT_EINTERNAL, "libsodium failed to initialise");
    return 0;
}

/* Write text as path, created with mode (never over an existing file). */
static int write_new(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return weft_error(errno == EEXIST ? WEFT_EINVAL : WEFT_EIO, "cannot create %s: %s", path, strerror(errno));
    int rc = weft_write_full(fd, text, strlen(text), 0, path);
    if (rc == 0 && fchmod(fd, mode) != 0) /* the umask may have narrowed the public key's mode */
        rc = weft_error(WEFT_EIO, "chmod %s: %s", path, strerror(errno));
    if (rc == 0 && fsync(fd) != 0)
        rc = weft_error(WEFT_EIO, "fsync %s: %s", path, strerror(errno));
    close(fd);
    if (rc)
        unlink(path);
    return rc;
}

int weft_sign_keygen(const char *path, uint8_t pk[32])
{
    WEFT_CHECK(init());
    char pub[4200], line[300], hex[129];
    uint8_t sk[64];
    snprintf(pub, sizeof pub, "%s.pub", path);
    if (access(path, F_OK) == 0 || access(pub, F_OK) == 0)
        return weft_error(WEFT_EINVAL, "%s or %s exists: keygen never overwrites a key", path, pub);
    crypto_sign_keypair(pk, sk);
    weft_hex_put(sk, 64, hex);
    snprintf(line, sizeof line, "weft-ed25519-secret %s\n", hex);
    sodium_memzero(sk, sizeof sk);
    int rc = write_new(path, line, 0600);
    sodium_memzero(line, sizeof line);
    weft_hex_put(pk, 32, hex);
    snprintf(line, sizeof line, "weft-ed25519-public %s\n", hex);
    if (rc == 0 && (rc = write_new(pub, line, 0644)) != 0)
        unlink(path);
    return rc;
}

/* A key file's first line (at most len - 1 bytes). */
static int read_key_file(const char *path, int secret, char *buf, size_t len, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "key file %s: %s", path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? weft_error(WEFT_EIO, "key file %s: %s", path, strerror(errno)) : 0;
    if (rc == 0 && secret && (st.st_mode & 077))
        rc = weft_error(WEFT_ECONFIG, "secret key file %s has mode %04o: it must not be readable by group or "
                        "others (chmod 600 %s)", path, (unsigned)(st.st_mode & 07777), path);
    ssize_t r = rc ? 0 : read(fd, buf, len - 1);
    close(fd);
    if (rc == 0 && r < 0)
        rc = weft_error(WEFT_EIO, "key file %s: %s", path, strerror(errno));
    *n = r > 0 ? (size_t)r : 0;
    return rc;
}

int weft_sign_load_secret(const char *path, uint8_t sk[64], uint8_t pk[32])
{
    WEFT_CHECK(init());
    char buf[512];
    size_t n;
    WEFT_CHECK(read_key_file(path, 1, buf, sizeof buf, &n));
    int rc = weft_key_parse(buf, n, path, 1, sk);
    sodium_memzero(buf, sizeof buf);
    if (rc == 0 && crypto_sign_ed25519_sk_to_pk(pk, sk) != 0)
        rc = weft_error(WEFT_EDATA, "%s: not an Ed25519 secret key", path);
    return rc;
}

int weft_sign_load_public(const char *path, uint8_t pk[32])
{
    char buf[512];
    size_t n;
    WEFT_CHECK(read_key_file(path, 0, buf, sizeof buf, &n));
    return weft_key_parse(buf, n, path, 0, pk);
}

int weft_sign_load_trusted(const char *list, uint8_t (*pk)[32], int *n)
{
    char copy[8192], *save = NULL;
    if (strlen(list) >= sizeof copy)
        return weft_error(WEFT_ECONFIG, "the list of trusted keys is longer than %zu bytes", sizeof copy - 1);
    snprintf(copy, sizeof copy, "%s", list);
    *n = 0;
    for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ')
            p++;
        if (!*p)
            continue;
        if (*n == WEFT_SIGN_MAX_TRUSTED)
            return weft_error(WEFT_ECONFIG, "more than %d trusted keys", WEFT_SIGN_MAX_TRUSTED);
        WEFT_CHECK(weft_sign_load_public(p, pk[*n]));
        (*n)++;
    }
    if (*n == 0)
        return weft_error(WEFT_ECONFIG, "no trusted key files in '%s'", list);
    return 0;
}

int weft_sign(const uint8_t sk[64], const void *msg, size_t len, uint8_t sig[64])
{
    WEFT_CHECK(init());
    if (crypto_sign_detached(sig, NULL, msg, len, sk) != 0)
        return weft_error(WEFT_EINTERNAL, "Ed25519 signing failed");
    return 0;
}

int weft_sign_ok(const uint8_t pk[32], const void *msg, size_t len, const uint8_t sig[64])
{
    return init() == 0 && crypto_sign_verify_detached(sig, msg, len, pk) == 0;
}
