/*
 * readfile.h -- the one way weft reads a whole small file from outside
 * (a config file, a tokenizer's vocabulary, a dataset manifest, a model's
 * config.json, text to encode): every reader gets the same checks and the
 * same errors, and none parses a file that a failed read cut short.
 */
#ifndef WEFT_RUNTIME_READFILE_H
#define WEFT_RUNTIME_READFILE_H

#include <stddef.h>

/* Read all of `path` ("-": standard input) into a buffer the caller frees,
 * with a '\0' after its *len bytes. `what` names the file in messages ("the
 * dataset manifest"); `max` is the most bytes such a file may have. Errors:
 * WEFT_ENOENT (missing, or a directory), WEFT_EIO (cannot open or read),
 * WEFT_EDATA (more than `max` bytes), WEFT_ENOMEM. */
int weft_read_file(const char *path, size_t max, const char *what, char **out, size_t *len);

#endif
