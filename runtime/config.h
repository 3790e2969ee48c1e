/*
 * config.h -- declared configuration keys, INI files and --section.key=value
 * overrides.
 *
 * Every key is declared exactly once, in a table owned by the module that
 * reads it (runtime, comm, data, ...): name, type, default, range, one-line
 * doc. A program hands the tables it uses to weft_config_new(); --help and
 * docs/config.md are generated from the same tables, so they cannot drift.
 *
 * Precedence, lowest first: declared default, each --config FILE in the
 * order given, each --section.key=value override. Every value is validated
 * when it is set; a bad one is a WEFT_ECONFIG error naming the origin
 * (file:line or "command line"), the key, the value and what is allowed. An
 * unknown key is an error that suggests the closest declared key.
 *
 * One job has one configuration for all its programs: a section this
 * program does not declare but another weft program reads ([model] handed
 * to weft-info, say) is skipped, in files and in --section.key=value
 * overrides; its keys are that program's to check. Any other unknown
 * section, and an unknown key inside a declared section, is an error.
 *
 * Getters take a declared key name and cannot fail: asking for an
 * undeclared key, or with the wrong type, is a bug in weft, reported by
 * weft_bug (runtime/error.h): the message names the getter and the key,
 * and the job ends with exit 70.
 */
#ifndef WEFT_RUNTIME_CONFIG_H
#define WEFT_RUNTIME_CONFIG_H

#include "runtime/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    WEFT_CFG_INT,    /* 64-bit signed integer */
    WEFT_CFG_FLOAT,  /* finite double */
    WEFT_CFG_BOOL,   /* true/false, yes/no, on/off, 1/0 */
    WEFT_CFG_STRING, /* any text; may be quoted "..." in a file */
    WEFT_CFG_ENUM,   /* one of the '|'-separated choices */
    WEFT_CFG_SIZE,   /* byte count: integer with optional K/M/G/T (KiB...) suffix */
} weft_config_type;

typedef struct weft_config_key {
    const char *name;    /* "section.key", lower case */
    weft_config_type type;
    const char *def;     /* default, written as it would be in a file */
    double min, max;     /* inclusive range for INT/FLOAT/SIZE; min > max: unbounded */
    const char *choices; /* ENUM only: "auto|mpi|shm" */
    const char *doc;     /* one line, shown by --help */
} weft_config_key;

/* A table ends with an entry whose name is NULL. */
#define WEFT_CONFIG_END { NULL, WEFT_CFG_INT, NULL, 0, 0, NULL, NULL }
#define WEFT_UNBOUNDED 1, 0

typedef struct weft_config weft_config;

/* tables: NULL-terminated list of key tables. Checks the tables themselves
 * (duplicate names, defaults that fail their own validation: WEFT_EINTERNAL). */
WEFT_API int weft_config_new(const weft_config_key *const *tables, weft_config **out);
WEFT_API void weft_config_free(weft_config *cfg);

/* Read an INI file: WEFT_ENOENT if it cannot be opened, WEFT_ECONFIG for bad
 * content. */
WEFT_API int weft_config_load_file(weft_config *cfg, const char *path);
/* Parse INI text of len bytes (need not be NUL-terminated); origin names it
 * in messages. */
WEFT_API int weft_config_parse_string(weft_config *cfg, const char *text, size_t len, const char *origin);
/* A byte count with an optional K/M/G/T (or KiB/MiB/GiB/TiB) suffix, powers
 * of 1024, as a SIZE key takes it: 0, or WEFT_ECONFIG (no message). */
WEFT_API int weft_size_parse(const char *text, int64_t *out);
/* Set one key from text; origin names where it came from. */
WEFT_API int weft_config_set(weft_config *cfg, const char *key, const char *value, const char *origin);

/* Consume weft's own arguments from argv: "--config FILE", "--config=FILE"
 * (repeatable; files apply first, in order) and "--section.key=value"
 * overrides (applied after all files). Other arguments stay in argv, in
 * order, and *argc is updated. "--" ends weft's arguments. */
WEFT_API int weft_config_parse_args(weft_config *cfg, int *argc, char **argv);

WEFT_API int64_t weft_config_int(const weft_config *cfg, const char *key);   /* INT and SIZE */
WEFT_API double weft_config_float(const weft_config *cfg, const char *key);
WEFT_API bool weft_config_bool(const weft_config *cfg, const char *key);
WEFT_API const char *weft_config_str(const weft_config *cfg, const char *key); /* STRING and ENUM */
/* Whether key is declared: for checks that apply only to programs which
 * read every key they involve (train/check.c). */
WEFT_API bool weft_config_has(const weft_config *cfg, const char *key);
/* "default", "FILE:LINE" or "command line". */
WEFT_API const char *weft_config_origin(const weft_config *cfg, const char *key);

/* Take a stored run's settings unless told otherwise (weft-eval from a
 * checkpoint's configuration): every key of cfg that names selects (a name,
 * or a section as "model.") and that cfg still has at its default is set to
 * its value in the INI text (len bytes), with origin as its origin. Keys
 * the text does not set, and every other line of it, are left alone; a
 * selected key cfg does not declare (a newer program's) or a bad value is
 * WEFT_ECONFIG naming origin, and nothing is adopted. */
WEFT_API int weft_config_adopt(weft_config *cfg, const char *text, size_t len, const char *origin,
                               const char *const *names);

/* The resolved configuration as INI text, every key, grouped by section
 * (malloc'ed; NULL on allocation failure). Reloading it gives the same
 * configuration; checkpoints store it. */
WEFT_API char *weft_config_to_ini(const weft_config *cfg);

/* Generated documentation of the tables: plain text for --help, Markdown
 * for docs/config.md. */
WEFT_API void weft_config_help(const weft_config_key *const *tables, FILE *out);
WEFT_API void weft_config_markdown(const weft_config_key *const *tables, FILE *out);

#endif
