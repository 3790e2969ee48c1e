/*
 * runfile_kind.c -- for tests/train/test_rundir_files.sh: every file under
 * RUN_DIR (hidden ones too), one line each, "MODE FORMAT DURABILITY PATH"
 * (MODE octal, PATH relative to RUN_DIR) as runtime/runfiles.h names it,
 * or "MODE unnamed - PATH" for a file the table does not name. Exit 0 after
 * listing, 66 when RUN_DIR cannot be read.
 */
#define _XOPEN_SOURCE 700
#include "runtime/runfiles.h"

#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static size_t root_len;

static const char *durability(weft_durable_policy p)
{
    return p == WEFT_DURABLE_SYNC ? "sync" : p == WEFT_DURABLE_BATCH ? "batch" : "best-effort";
}

static int one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F)
        return 0;
    const char *rel = path + root_len + 1;
    const weft_runfile *f = weft_runfile_find(rel);
    printf("%04o %s %s %s\n", (unsigned)(st->st_mode & 07777), f ? weft_runfile_format_name(f->format) : "unnamed",
           f ? durability(f->durability) : "-", rel);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: runfile_kind RUN_DIR\n");
        return 64;
    }
    root_len = strlen(argv[1]);
    while (root_len > 1 && argv[1][root_len - 1] == '/')
        argv[1][--root_len] = 0;
    if (nftw(argv[1], one, 16, FTW_PHYS) != 0) {
        perror(argv[1]);
        return 66;
    }
    return 0;
}
