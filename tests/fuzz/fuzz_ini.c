/*
 * fuzz_ini.c -- libFuzzer target for the INI parser and value converters.
 *
 * Each input is parsed by weft_config_parse_string against a small table
 * with every key type. Whether or not it parses, the configuration must stay
 * valid (a failed parse changes nothing), so it is then written with
 * weft_config_to_ini, read back into a fresh configuration, and compared key
 * by key: any difference, or a written text that does not parse, aborts.
 * The first line of the input is also fed to weft_config_set for every key,
 * which reaches the converters without the INI grammar in front of them.
 * The sanitizers the Makefile builds with catch the rest (overflows, leaks).
 */
#include "runtime/config.h"
#include "runtime/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const weft_config_key keys[] = {
    {"comm.backend", WEFT_CFG_ENUM, "auto", 0, 0, "auto|mpi|shm|tcp", "Transport."},
    {"comm.timeout", WEFT_CFG_FLOAT, "300", 1, 86400, NULL, "Seconds."},
    {"comm.retries", WEFT_CFG_INT, "3", 0, 10, NULL, "Attempts."},
    {"comm.verbose", WEFT_CFG_BOOL, "false", WEFT_UNBOUNDED, NULL, "Chatty."},
    {"train.steps", WEFT_CFG_INT, "1000", WEFT_UNBOUNDED, NULL, "Steps."},
    {"train.lr", WEFT_CFG_FLOAT, "3e-4", WEFT_UNBOUNDED, NULL, "Rate."},
    {"train.name", WEFT_CFG_STRING, "run", WEFT_UNBOUNDED, NULL, "Name."},
    {"data.buffer", WEFT_CFG_SIZE, "64MiB", 4096, 1073741824.0, NULL, "Buffer."},
    {"data.limit", WEFT_CFG_SIZE, "0", WEFT_UNBOUNDED, NULL, "Limit."},
    {"data.path", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL, "Path."},
    WEFT_CONFIG_END,
};
static const weft_config_key *const tables[] = {keys, NULL};

static void die(const char *what, const char *ini)
{
    fprintf(stderr, "fuzz_ini: %s\n%s\n--- ini ---\n%s\n", what, weft_last_error(), ini ? ini : "(null)");
    abort();
}

static bool same_key(const weft_config *a, const weft_config *b, const weft_config_key *k)
{
    switch (k->type) {
    case WEFT_CFG_INT:
    case WEFT_CFG_SIZE:
        return weft_config_int(a, k->name) == weft_config_int(b, k->name);
    case WEFT_CFG_FLOAT: {
        double x = weft_config_float(a, k->name), y = weft_config_float(b, k->name);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    case WEFT_CFG_BOOL:
        return weft_config_bool(a, k->name) == weft_config_bool(b, k->name);
    default:
        return strcmp(weft_config_str(a, k->name), weft_config_str(b, k->name)) == 0;
    }
}

/* to_ini, parse it back, compare, and check that writing again is stable. */
static void roundtrip(const weft_config *cfg)
{
    weft_config *back = NULL;
    char *ini = weft_config_to_ini(cfg);
    if (!ini)
        die("to_ini returned NULL", NULL);
    if (weft_config_new(tables, &back) != 0)
        die("config_new failed", ini);
    if (weft_config_parse_string(back, ini, strlen(ini), "roundtrip") != 0)
        die("to_ini output does not parse", ini);
    for (const weft_config_key *k = keys; k->name; k++)
        if (!same_key(cfg, back, k))
            die(k->name, ini);
    char *again = weft_config_to_ini(back);
    if (!again || strcmp(ini, again) != 0)
        die("to_ini is not stable", ini);
    free(again);
    free(ini);
    weft_config_free(back);
}

/* Sets every key to the input's first line (up to 512 bytes, no NUL). */
static void set_each(weft_config *cfg, const uint8_t *data, size_t size)
{
    char line[513];
    size_t n = 0;
    while (n < size && n < 512 && data[n] != '\n' && data[n] != '\0')
        n++;
    memcpy(line, data, n);
    line[n] = '\0';
    for (const weft_config_key *k = keys; k->name; k++)
        (void)weft_config_set(cfg, k->name, line, "fuzz");
    (void)weft_config_set(cfg, line, "1", "fuzz");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weft_config *cfg = NULL;
    if (weft_config_new(tables, &cfg) != 0)
        die("config_new failed", NULL);
    (void)weft_config_parse_string(cfg, (const char *)data, size, "fuzz.ini");
    roundtrip(cfg);
    set_each(cfg, data, size);
    roundtrip(cfg);
    weft_config_free(cfg);
    return 0;
}
