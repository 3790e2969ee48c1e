/*
 * readfile.c -- weft_read_file (readfile.h): read a whole file into memory.
 *
 * Reads until end of file rather than trusting the size fstat gave, so a
 * pipe (standard input) and a file that changes while read are handled
 * alike; a read error is an error, never a short buffer handed to a parser.
 */
#include "runtime/readfile.h"
#include "runtime/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_fd(int fd, const char *path, size_t max, const char *what, size_t hint, char **out, size_t *len)
{
    size_t n = 0, cap = hint < max ? hint + 1 : max + 1; /* +1: room for the '\0', and to see a file over max */
    cap = cap < 4096 ? 4096 : cap;
    char *buf = malloc(cap);
    if (!buf)
        return weft_error(WEFT_ENOMEM, "%s: no memory to read %s (%zu bytes)", path, what, cap);
    for (;;) {
        if (n + 1 == cap) {
            if (n > max)
                break;
            size_t grow = cap * 2 < max + 2 ? cap * 2 : max + 2;
            char *b = realloc(buf, grow);
            if (!b) {
                free(buf);
                return weft_error(WEFT_ENOMEM, "%s: no memory to read %s (%zu bytes)", path, what, grow);
            }
            buf = b;
            cap = grow;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return weft_error(WEFT_EIO, "%s: reading %s failed after %zu bytes: %s", path, what, n, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        free(buf);
        return weft_error(WEFT_EDATA, "%s: more than %zu bytes, more than %s may have; is it the right file?", path,
                          max, what);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int weft_read_file(const char *path, size_t max, const char *what, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int stdin_ = strcmp(path, "-") == 0;
    int fd = stdin_ ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return weft_error(errno == ENOENT || errno == ENOTDIR ? WEFT_ENOENT : WEFT_EIO, "%s: cannot open %s: %s",
                          path, what, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) != 0 ? weft_error(WEFT_EIO, "%s: cannot stat %s: %s", path, what, strerror(errno))
           : S_ISDIR(st.st_mode) ? weft_error(WEFT_ENOENT, "%s is a directory, not %s", path, what)
           : read_fd(fd, path, max, what, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0, out, len);
    if (!stdin_)
        close(fd);
    return rc;
}
