/*
 * import.c -- detection of foreign token files (see import.h). A file is
 * taken for an llm.c shard only when its first int32 is llm.c's magic;
 * anything else is a raw token array.
 */
#include "data/import.h"
#include "data/le.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int probe_llmc(const char *path, const uint8_t *h, uint64_t size, weft_import_source *out)
{
    uint32_t version = weft_le_get32(h + 4);
    uint64_t count = weft_le_get32(h + 8);
    if (size < WEFT_LLMC_HEADER_BYTES)
        return weft_error(WEFT_EDATA, "%s: truncated llm.c shard header: expected %d bytes, found %" PRIu64,
                          path, WEFT_LLMC_HEADER_BYTES, size);
    if (version != 1)
        return weft_error(WEFT_EDATA, "%s: llm.c shard at offset 4: expected version 1 (u16 tokens), found %u",
                          path, version);
    if (size != WEFT_LLMC_HEADER_BYTES + 2 * count)
        return weft_error(WEFT_EDATA, "%s: llm.c shard size: header at offset 8 says %" PRIu64 " tokens, so expected %" PRIu64 " bytes, found %" PRIu64 "%s",
                          path, count, WEFT_LLMC_HEADER_BYTES + 2 * count, size,
                          size < WEFT_LLMC_HEADER_BYTES + 2 * count ? " (truncated)" : "");
    out->llmc = 1;
    out->width = 2;
    out->offset = WEFT_LLMC_HEADER_BYTES;
    out->tokens = count;
    return 0;
}

int weft_import_probe(const char *path, unsigned raw_width, weft_import_source *out)
{
    uint8_t h[12] = {0};
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(errno == ENOENT ? WEFT_ENOENT : WEFT_EIO, "%s: cannot open input: %s", path, strerror(errno));
    ssize_t n = pread(fd, h, sizeof h, 0);
    int e = errno, st_rc = fstat(fd, &st);
    close(fd);
    if (n < 0 || st_rc != 0)
        return weft_error(WEFT_EIO, "%s: cannot read input: %s", path, strerror(n < 0 ? e : errno));
    if (!S_ISREG(st.st_mode))
        return weft_error(WEFT_ENOENT, "%s: expected a regular file of tokens", path);
    uint64_t size = (uint64_t)st.st_size;
    if (n >= 4 && weft_le_get32(h) == WEFT_LLMC_MAGIC)
        return probe_llmc(path, h, size, out);
    if (size % raw_width != 0)
        return weft_error(WEFT_EDATA, "%s: raw token array of %u-byte tokens: expected a size that is a multiple of %u, found %" PRIu64 " bytes (a partial token at offset %" PRIu64 ")",
                          path, raw_width, raw_width, size, size - size % raw_width);
    out->llmc = 0;
    out->width = raw_width;
    out->offset = 0;
    out->tokens = size / raw_width;
    return 0;
}
