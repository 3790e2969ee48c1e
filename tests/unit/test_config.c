/*
 * test_config.c -- the configuration system against its contract in
 * runtime/config.h: defaults, precedence and origins, every type and range
 * boundary, the INI grammar, every error with its message, the command line,
 * the INI round trip, table checks, and the generated documentation.
 *
 * Error tests assert the code and that weft_last_error() names the place,
 * the key and the value, since the message is what a user acts on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runtime/config.h"
#include "runtime/error.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Two tables, as two modules would declare them; train.seed comes after the
 * data keys so that grouping by section is exercised. */
static const weft_config_key comm_keys[] = {
    {"comm.backend", WEFT_CFG_ENUM, "auto", 0, 0, "auto|mpi|shm|tcp", "Transport that carries collectives."},
    {"comm.timeout", WEFT_CFG_FLOAT, "300", 1, 86400, NULL,
     "Seconds a collective may take before the watchdog dumps the flight recorder and aborts the job."},
    {"comm.retries", WEFT_CFG_INT, "3", 0, 10, NULL, "Connection attempts per peer."},
    {"comm.verbose", WEFT_CFG_BOOL, "false", WEFT_UNBOUNDED, NULL, "Log every collective."},
    WEFT_CONFIG_END,
};

static const weft_config_key train_keys[] = {
    {"train.steps", WEFT_CFG_INT, "1000", WEFT_UNBOUNDED, NULL, "Optimizer steps to run."},
    {"train.lr", WEFT_CFG_FLOAT, "3e-4", WEFT_UNBOUNDED, NULL, "Peak learning rate."},
    {"train.name", WEFT_CFG_STRING, "run", WEFT_UNBOUNDED, NULL, "Name of the run."},
    {"data.buffer", WEFT_CFG_SIZE, "64MiB", 4096, 1073741824.0, NULL, "Read buffer per shard."},
    {"data.limit", WEFT_CFG_SIZE, "0", WEFT_UNBOUNDED, NULL, "Stop after this many bytes (0: all)."},
    {"data.path", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL, "Dataset manifest."},
    {"train.seed", WEFT_CFG_INT, "-1", -1, 1000000, NULL, "Seed of the data order (-1: from the clock)."},
    WEFT_CONFIG_END,
};

static const weft_config_key *const tables[] = {comm_keys, train_keys, NULL};

static char tmpdir[] = "/tmp/weft-test-config.XXXXXX";

/* ---- helpers ---------------------------------------------------------- */

static int setup(void **state)
{
    weft_config *cfg = NULL;
    if (weft_config_new(tables, &cfg) != 0)
        return -1;
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    weft_config_free(*state);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to tmpdir/name; returns the path (static buffer per slot). */
static const char *write_file(const char *name, const char *text)
{
    static char paths[4][512];
    static int slot;
    char *p = paths[slot++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return p;
}

/* Fails unless the last error message contains every needle. */
static void has(const char *needle)
{
    if (!strstr(weft_last_error(), needle)) {
        print_error("message \"%s\"\n  does not contain \"%s\"\n", weft_last_error(), needle);
        fail();
    }
}

static int parse(weft_config *cfg, const char *text)
{
    weft_error_clear();
    return weft_config_parse_string(cfg, text, strlen(text), "train.ini");
}

/* Parses text, expecting WEFT_ECONFIG and a message with every needle. */
static void parse_fails(weft_config *cfg, const char *text, const char *n1, const char *n2, const char *n3)
{
    assert_int_equal(parse(cfg, text), WEFT_ECONFIG);
    has("config: ");
    has(n1);
    if (n2)
        has(n2);
    if (n3)
        has(n3);
}

static void set_fails(weft_config *cfg, const char *key, const char *value, const char *n1, const char *n2)
{
    weft_error_clear();
    assert_int_equal(weft_config_set(cfg, key, value, "command line"), WEFT_ECONFIG);
    has("command line");
    has(n1);
    if (n2)
        has(n2);
}

static void set_ok(weft_config *cfg, const char *key, const char *value)
{
    int rc = weft_config_set(cfg, key, value, "command line");
    if (rc != 0)
        print_error("%s\n", weft_last_error());
    assert_int_equal(rc, 0);
}

/* ---- defaults, precedence, origins ------------------------------------- */

static void test_defaults(void **state)
{
    weft_config *cfg = *state;
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "auto");
    assert_true(weft_config_float(cfg, "comm.timeout") == 300.0);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 3);
    assert_false(weft_config_bool(cfg, "comm.verbose"));
    assert_int_equal(weft_config_int(cfg, "train.steps"), 1000);
    assert_true(weft_config_float(cfg, "train.lr") == 3e-4);
    assert_string_equal(weft_config_str(cfg, "train.name"), "run");
    assert_int_equal(weft_config_int(cfg, "data.buffer"), 64 << 20);
    assert_int_equal(weft_config_int(cfg, "data.limit"), 0);
    assert_string_equal(weft_config_str(cfg, "data.path"), "");
    assert_int_equal(weft_config_int(cfg, "train.seed"), -1);
    assert_string_equal(weft_config_origin(cfg, "comm.timeout"), "default");
}

static void test_file_then_override(void **state)
{
    weft_config *cfg = *state;
    const char *f = write_file("base.ini", "[comm]\ntimeout = 60\nretries = 5\n");
    char arg[600];
    snprintf(arg, sizeof arg, "--config=%s", f);
    char *argv[] = {"prog", "--comm.timeout=90", arg, NULL};
    int argc = 3;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv), 0);
    assert_int_equal(argc, 1);
    assert_null(argv[1]);
    /* The override wins although it came first on the line. */
    assert_true(weft_config_float(cfg, "comm.timeout") == 90.0);
    assert_string_equal(weft_config_origin(cfg, "comm.timeout"), "command line");
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 5);
    char want[600];
    snprintf(want, sizeof want, "%s:3", f);
    assert_string_equal(weft_config_origin(cfg, "comm.retries"), want);
    assert_string_equal(weft_config_origin(cfg, "comm.backend"), "default");
}

static void test_files_apply_in_order(void **state)
{
    weft_config *cfg = *state;
    char a[600], b[600];
    snprintf(a, sizeof a, "%s", write_file("a.ini", "[comm]\nretries = 1\nbackend = mpi\n"));
    snprintf(b, sizeof b, "%s", write_file("b.ini", "[comm]\nretries = 2\n"));
    char *argv[] = {"prog", "--config", a, "--comm.retries=7", "--config", b, "--comm.retries=8", NULL};
    int argc = 7;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv), 0);
    assert_int_equal(argc, 1);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 8); /* last override */
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "mpi");
    char want[620];
    snprintf(want, sizeof want, "%s:3", a);
    assert_string_equal(weft_config_origin(cfg, "comm.backend"), want);

    char *argv2[] = {"prog", "--config", a, "--config", b, NULL};
    argc = 5;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv2), 0);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 2); /* later file wins */
}

/* One job, one configuration: a section another weft program reads
 * ([model] for weft-info) is skipped, in a file and on the command line;
 * a typo of a section, an unknown section and an unknown key in a section
 * this program knows are still errors. */
static void test_foreign_sections(void **state)
{
    weft_config *cfg = *state;
    assert_int_equal(parse(cfg, "[model]\nn_layer = 4\nanything = goes\n[comm]\nretries = 7\n"), 0);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 7);
    assert_false(weft_config_has(cfg, "model.n_layer"));
    assert_true(weft_config_has(cfg, "comm.retries"));
    parse_fails(cfg, "[model]\nn_layer = 4\n[comm]\ntimout = 5\n", "train.ini:4: unknown key 'comm.timout'",
                "did you mean 'comm.timeout'?", NULL);
    parse_fails(cfg, "[modle]\nn_layer = 4\n", "train.ini:1: unknown section [modle]", NULL, NULL);
    parse_fails(cfg, "[model]\nthis is not a key line\n", "train.ini:2:", "expected 'key = value'", NULL);
    char a0[] = "prog", a1[] = "--model.n_layer=6", a2[] = "--comm.retries=2";
    char *argv[] = {a0, a1, a2, NULL};
    int argc = 3;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv), 0);
    assert_int_equal(argc, 1);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 2);
    set_fails(cfg, "model.n_layer", "6", "unknown key 'model.n_layer'", NULL); /* the API stays strict */
}

static void test_args_keep_others(void **state)
{
    weft_config *cfg = *state;
    char arg[600];
    snprintf(arg, sizeof arg, "--config=%s", write_file("k.ini", "[train]\nsteps = 5\n"));
    char *argv[] = {"prog", "-v", arg, "input.txt", "--output=x.bin", "--comm.retries=4", "--verbose",
                    "-x.y=1", "--", "--comm.retries=9", "--config", "z", NULL};
    int argc = 12;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv), 0);
    const char *want[] = {"prog", "-v", "input.txt", "--output=x.bin", "--verbose", "-x.y=1",
                          "--", "--comm.retries=9", "--config", "z"};
    assert_int_equal(argc, 10);
    for (int i = 0; i < 10; i++)
        assert_string_equal(argv[i], want[i]);
    assert_null(argv[10]);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 4);
    assert_int_equal(weft_config_int(cfg, "train.steps"), 5);
}

static void test_args_errors(void **state)
{
    weft_config *cfg = *state;
    char *argv[] = {"prog", "--comm.retries", "5", NULL};
    int argc = 3;
    weft_error_clear();
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv), WEFT_ECONFIG);
    has("command line");
    has("--comm.retries=VALUE");
    assert_int_equal(argc, 3); /* argv untouched on failure */
    assert_string_equal(argv[1], "--comm.retries");
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 3);

    char *argv2[] = {"prog", "--config", NULL};
    argc = 2;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv2), WEFT_ECONFIG);
    has("--config needs a file");

    char *argv7[] = {"prog", "--config=", NULL};
    argc = 2;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv7), WEFT_ECONFIG);
    has("--config= needs a file");

    char *argv3[] = {"prog", "--config=/nonexistent/dir/train.ini", NULL};
    argc = 2;
    weft_error_clear();
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv3), WEFT_ENOENT);
    has("/nonexistent/dir/train.ini");

    char *argv4[] = {"prog", "--config", "/nonexistent/x.ini", NULL};
    argc = 3;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv4), WEFT_ENOENT);
    has("/nonexistent/x.ini");

    char *argv5[] = {"prog", "--comm.retries=11", NULL};
    argc = 2;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv5), WEFT_ECONFIG);
    has("command line: comm.retries = \"11\" is out of range (integer in [0, 10])");

    char *argv6[] = {"prog", "--comm.timout=5", NULL};
    argc = 2;
    assert_int_equal(weft_config_parse_args(cfg, &argc, argv6), WEFT_ECONFIG);
    has("unknown key 'comm.timout'; did you mean 'comm.timeout'?");
}

static void test_load_file(void **state)
{
    weft_config *cfg = *state;
    assert_int_equal(weft_config_load_file(cfg, write_file("t.ini", "[data]\npath = /d/m.json\n")), 0);
    assert_string_equal(weft_config_str(cfg, "data.path"), "/d/m.json");
    weft_error_clear();
    assert_int_equal(weft_config_load_file(cfg, tmpdir), WEFT_ENOENT); /* a directory */
    has(tmpdir);
    char bad[600];
    snprintf(bad, sizeof bad, "%s", write_file("bad.ini", "[comm]\n\n\ntimeout = soon\n"));
    assert_int_equal(weft_config_load_file(cfg, bad), WEFT_ECONFIG);
    char want[700];
    snprintf(want, sizeof want, "%s:4: comm.timeout = \"soon\" is not a number", bad);
    has(want);
}

static void test_set_origin(void **state)
{
    weft_config *cfg = *state;
    assert_int_equal(weft_config_set(cfg, "train.steps", "42", "WEFT_STEPS"), 0);
    assert_int_equal(weft_config_int(cfg, "train.steps"), 42);
    assert_string_equal(weft_config_origin(cfg, "train.steps"), "WEFT_STEPS");
}

/* weft_config_adopt: the selected keys still at their defaults take the
 * text's values; keys given elsewhere, keys not selected, sections nobody
 * declares and keys the text lacks are left alone. */
static void test_adopt(void **state)
{
    weft_config *cfg = *state;
    assert_int_equal(weft_config_set(cfg, "train.steps", "7", "command line"), 0);
    static const char text[] = "# a stored run\n[comm]\nbackend = tcp\nretries = 9\n[lora]\nrank = 8\n"
                               "[train]\nsteps = 500\nlr = 0.5\nname = \"stored run\"\n";
    static const char *const names[] = {"train.", "comm.retries", NULL};
    assert_int_equal(weft_config_adopt(cfg, text, strlen(text), "checkpoint c.h5", names), 0);
    assert_int_equal(weft_config_int(cfg, "train.steps"), 7); /* given: kept */
    assert_string_equal(weft_config_origin(cfg, "train.steps"), "command line");
    assert_true(weft_config_float(cfg, "train.lr") == 0.5);
    assert_string_equal(weft_config_origin(cfg, "train.lr"), "checkpoint c.h5");
    assert_string_equal(weft_config_str(cfg, "train.name"), "stored run");
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 9);
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "auto"); /* not selected */
    assert_int_equal(weft_config_int(cfg, "train.seed"), -1);          /* not in the text */
    assert_string_equal(weft_config_origin(cfg, "train.seed"), "default");
    /* a bad value, or a selected key this program does not know (a newer
     * run's), is an error naming the origin */
    static const char bad[] = "[train]\nseed = soon\n", unknown[] = "[train]\nnot_a_key = 1\n";
    assert_int_equal(weft_config_adopt(cfg, bad, strlen(bad), "checkpoint c.h5", names), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "checkpoint c.h5"));
    assert_int_equal(weft_config_adopt(cfg, unknown, strlen(unknown), "checkpoint c.h5", names), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "not_a_key"));
    assert_int_equal(weft_config_int(cfg, "train.seed"), -1); /* nothing half-adopted */
}

/* ---- types and ranges ---------------------------------------------------- */

static void test_int(void **state)
{
    weft_config *cfg = *state;
    set_ok(cfg, "comm.retries", "0");
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 0);
    set_ok(cfg, "comm.retries", "10");
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 10);
    set_ok(cfg, "comm.retries", "+7");
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 7);
    set_fails(cfg, "comm.retries", "-1", "comm.retries = \"-1\" is out of range (integer in [0, 10])", NULL);
    set_fails(cfg, "comm.retries", "11", "\"11\" is out of range", NULL);
    set_fails(cfg, "comm.retries", "abc", "comm.retries = \"abc\" is not an integer (integer in [0, 10])", NULL);
    set_fails(cfg, "comm.retries", "5x", "\"5x\" is not an integer", NULL);
    set_fails(cfg, "comm.retries", "2.0", "\"2.0\" is not an integer", NULL);
    set_fails(cfg, "comm.retries", "", "\"\" is not an integer", NULL);
    set_fails(cfg, "comm.retries", " 5", "is not an integer", NULL);
    set_fails(cfg, "comm.retries", "a\"b\\", "comm.retries = \"a\\\"b\\\\\" is not an integer", NULL);
    set_fails(cfg, "train.steps", "9223372036854775808", "is out of range (integer, no limit)", NULL);
    set_ok(cfg, "train.steps", "9223372036854775807");
    assert_true(weft_config_int(cfg, "train.steps") == INT64_MAX);
    set_ok(cfg, "train.steps", "-9223372036854775808");
    assert_true(weft_config_int(cfg, "train.steps") == INT64_MIN);
    set_ok(cfg, "train.seed", "-1");
    set_fails(cfg, "train.seed", "-2", "integer in [-1, 1000000]", NULL);
    assert_int_equal(weft_config_int(cfg, "train.seed"), -1);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 7); /* failures changed nothing */
}

static void test_float(void **state)
{
    weft_config *cfg = *state;
    set_ok(cfg, "comm.timeout", "1");
    assert_true(weft_config_float(cfg, "comm.timeout") == 1.0);
    set_ok(cfg, "comm.timeout", "86400");
    assert_true(weft_config_float(cfg, "comm.timeout") == 86400.0);
    set_ok(cfg, "comm.timeout", "2.5e1");
    assert_true(weft_config_float(cfg, "comm.timeout") == 25.0);
    set_fails(cfg, "comm.timeout", "0.999", "\"0.999\" is out of range (float in [1, 86400])", NULL);
    set_fails(cfg, "comm.timeout", "86400.01", "is out of range", NULL);
    set_fails(cfg, "comm.timeout", "abc", "comm.timeout = \"abc\" is not a number (float in [1, 86400])", NULL);
    set_fails(cfg, "comm.timeout", "nan", "\"nan\" is not a finite number", NULL);
    set_fails(cfg, "train.lr", "inf", "\"inf\" is not a finite number (float, no limit)", NULL);
    set_fails(cfg, "train.lr", "1e400", "is not a finite number", NULL);
    set_fails(cfg, "train.lr", "1.0.0", "is not a number", NULL);
    set_fails(cfg, "train.lr", "", "is not a number", NULL);
    set_ok(cfg, "train.lr", "-1e-300");
    assert_true(weft_config_float(cfg, "train.lr") == -1e-300);
    assert_true(weft_config_float(cfg, "comm.timeout") == 25.0);
}

static void test_bool(void **state)
{
    weft_config *cfg = *state;
    const char *yes[] = {"true", "TRUE", "Yes", "on", "1"}, *no[] = {"false", "False", "NO", "off", "0"};
    for (int i = 0; i < 5; i++) {
        set_ok(cfg, "comm.verbose", yes[i]);
        assert_true(weft_config_bool(cfg, "comm.verbose"));
        set_ok(cfg, "comm.verbose", no[i]);
        assert_false(weft_config_bool(cfg, "comm.verbose"));
    }
    set_fails(cfg, "comm.verbose", "maybe",
              "comm.verbose = \"maybe\" is not a boolean (true/false, yes/no, on/off, 1/0)", NULL);
    set_fails(cfg, "comm.verbose", "2", "is not a boolean", NULL);
    set_fails(cfg, "comm.verbose", "", "is not a boolean", NULL);
}

static void test_enum(void **state)
{
    weft_config *cfg = *state;
    set_ok(cfg, "comm.backend", "shm");
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "shm");
    set_ok(cfg, "comm.backend", "TCP"); /* any case; the declared spelling is kept */
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "tcp");
    set_fails(cfg, "comm.backend", "smh", "comm.backend = \"smh\" is not one of the choices "
              "(one of auto|mpi|shm|tcp); did you mean 'shm'?", NULL);
    set_fails(cfg, "comm.backend", "infiniband", "one of auto|mpi|shm|tcp", NULL);
    set_fails(cfg, "comm.backend", "", "is not one of the choices", NULL);
    set_fails(cfg, "comm.backend", "auto|mpi", "is not one of the choices", NULL);
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "tcp");
}

static void test_size(void **state)
{
    weft_config *cfg = *state;
    struct { const char *text; int64_t bytes; } ok[] = {
        {"4096", 4096}, {"4K", 4096}, {"4k", 4096}, {"4KiB", 4096}, {"4 kib", 4096},
        {"3M", 3 << 20}, {"3MiB", 3 << 20}, {"1G", 1 << 30}, {"1GiB", 1 << 30}, {"1073741824", 1 << 30},
        {"5000B", 5000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        set_ok(cfg, "data.buffer", ok[i].text);
        assert_int_equal(weft_config_int(cfg, "data.buffer"), ok[i].bytes);
    }
    set_ok(cfg, "data.limit", "2T");
    assert_true(weft_config_int(cfg, "data.limit") == (int64_t)2 << 40);
    set_ok(cfg, "data.limit", "7TiB");
    assert_true(weft_config_int(cfg, "data.limit") == (int64_t)7 << 40);
    set_ok(cfg, "data.limit", "9223372036854775807");
    assert_true(weft_config_int(cfg, "data.limit") == INT64_MAX);
    set_ok(cfg, "data.limit", "8388607T");
    assert_true(weft_config_int(cfg, "data.limit") == (int64_t)8388607 << 40);

    set_fails(cfg, "data.buffer", "4095", "data.buffer = \"4095\" is out of range (size in [4 KiB, 1 GiB])", NULL);
    set_fails(cfg, "data.buffer", "1073741825", "is out of range", NULL);
    set_fails(cfg, "data.buffer", "2G", "\"2G\" is out of range", NULL);
    set_fails(cfg, "data.buffer", "1.5G", "\"1.5G\" is not a byte count", NULL);
    set_fails(cfg, "data.buffer", "-4K", "is not a byte count", NULL);
    set_fails(cfg, "data.buffer", "4X", "\"4X\" is not a byte count with an optional K/M/G/T", NULL);
    set_fails(cfg, "data.buffer", "4KB", "is not a byte count", NULL);
    set_fails(cfg, "data.buffer", "K", "is not a byte count", NULL);
    set_fails(cfg, "data.buffer", "", "is not a byte count", NULL);
    set_fails(cfg, "data.limit", "8388608T", "data.limit = \"8388608T\" is too large (size, no limit)", NULL);
    set_fails(cfg, "data.limit", "9223372036854775808", "is too large", NULL);
    set_fails(cfg, "data.limit", "99999999999999999999999999", "is too large", NULL);
    set_fails(cfg, "data.limit", "18014398509481984K", "is too large", NULL);
    assert_int_equal(weft_config_int(cfg, "data.buffer"), 5000);
}

static void test_string(void **state)
{
    weft_config *cfg = *state;
    set_ok(cfg, "train.name", "a b # c");
    assert_string_equal(weft_config_str(cfg, "train.name"), "a b # c"); /* no INI rules on the command line */
    set_ok(cfg, "train.name", "");
    assert_string_equal(weft_config_str(cfg, "train.name"), "");
    set_ok(cfg, "train.name", "caf\xc3\xa9\tx");
    assert_string_equal(weft_config_str(cfg, "train.name"), "caf\xc3\xa9\tx");
    set_fails(cfg, "train.name", "a\nb", "train.name = \"a\\x0ab\" contains a control character", NULL);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    set_fails(cfg, "train.name", big, "is too long", NULL);
    big[4096] = '\0';
    set_ok(cfg, "train.name", big);
    assert_int_equal(strlen(weft_config_str(cfg, "train.name")), 4096);
}

/* ---- the INI grammar ------------------------------------------------------ */

static void test_quoted_strings(void **state)
{
    weft_config *cfg = *state;
    assert_int_equal(parse(cfg, "[train]\nname = \"a \\\"b\\\" \\\\ c\"\n"), 0);
    assert_string_equal(weft_config_str(cfg, "train.name"), "a \"b\" \\ c");
    assert_int_equal(parse(cfg, "[train]\nname = \"  keep # and ; \"   # comment\n"), 0);
    assert_string_equal(weft_config_str(cfg, "train.name"), "  keep # and ; ");
    assert_int_equal(parse(cfg, "[train]\nname = \"x\";c\n"), 0);
    assert_string_equal(weft_config_str(cfg, "train.name"), "x");
    assert_int_equal(parse(cfg, "[train]\nname = \"\"\n"), 0);
    assert_string_equal(weft_config_str(cfg, "train.name"), "");
    assert_int_equal(parse(cfg, "[train]\nname =\n"), 0);
    assert_string_equal(weft_config_str(cfg, "train.name"), "");
    assert_int_equal(parse(cfg, "[comm]\nretries = \"4\"\n"), 0); /* quotes are fine for any type */
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 4);

    parse_fails(cfg, "[train]\nname = \"abc\n", "train.ini:2:", "train.name", "no closing");
    parse_fails(cfg, "[train]\n\nname = \"a\\nb\"\n",
                "train.ini:3: train.name = \"a\\nb\" has an unknown escape '\\n'", NULL, NULL);
    parse_fails(cfg, "[train]\nname = \"abc\\\n", "train.ini:2:", "no closing", NULL);
    parse_fails(cfg, "[train]\nname = \"abc\\\"\n", "train.ini:2:", "no closing", NULL);
    parse_fails(cfg, "[train]\nname = \"a\" b\n", "train.ini:2:", "train.name", "after the closing quote");
    assert_string_equal(weft_config_str(cfg, "train.name"), "");
}

static void test_comments(void **state)
{
    weft_config *cfg = *state;
    const char *text = "# leading comment\n"
                       "; another\n"
                       "\n"
                       "   \t\n"
                       "[comm]   # the network\n"
                       "  backend=mpi   \n"
                       "timeout = 42 # seconds\n"
                       "retries = 2;not a comment\n";
    /* ';' glued to a value is part of it; 2;not... is no integer. */
    parse_fails(cfg, text, "train.ini:8:", "comm.retries = \"2;not a comment\" is not an integer", NULL);
    text = "# leading comment\n[comm]   # the network\n  backend=mpi   \ntimeout = 42 # seconds\n"
           "retries = 2 ; comment\n[train]\nname = a#b\n[data]\npath = # empty\n";
    assert_int_equal(parse(cfg, text), 0);
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "mpi");
    assert_true(weft_config_float(cfg, "comm.timeout") == 42.0);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 2);
    assert_string_equal(weft_config_str(cfg, "train.name"), "a#b");
    assert_string_equal(weft_config_str(cfg, "data.path"), "");
    assert_string_equal(weft_config_origin(cfg, "comm.timeout"), "train.ini:4");
}

static void test_crlf_bom_no_newline(void **state)
{
    weft_config *cfg = *state;
    const char *text = "\xef\xbb\xbf[comm]\r\nretries = 6\r\n\r\n[train]\r\nname = \"x y\"\r\nsteps = 9";
    assert_int_equal(parse(cfg, text), 0);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 6);
    assert_string_equal(weft_config_str(cfg, "train.name"), "x y");
    assert_int_equal(weft_config_int(cfg, "train.steps"), 9);
    assert_string_equal(weft_config_origin(cfg, "train.steps"), "train.ini:6");
    assert_int_equal(parse(cfg, ""), 0);
    assert_int_equal(weft_config_parse_string(cfg, NULL, 0, "empty"), 0);
}

static void test_sections_and_keys(void **state)
{
    weft_config *cfg = *state;
    assert_int_equal(parse(cfg, "[ comm ]\nretries = 1\n[train]\nsteps = 2\n[comm]\nbackend = shm\n"), 0);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 1);
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "shm");
    /* A key may be set again by a later text: precedence, not a duplicate. */
    assert_int_equal(parse(cfg, "[comm]\nretries = 9\n"), 0);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 9);
}

/* ---- errors in files ------------------------------------------------------- */

static void test_error_messages(void **state)
{
    weft_config *cfg = *state;
    parse_fails(cfg, "[comm]\n\n\n\n\n\n\n\n\n\n\ntimeout = abc\n",
                "config: train.ini:12: comm.timeout = \"abc\" is not a number (float in [1, 86400])", NULL, NULL);
    parse_fails(cfg, "# x\n\n[comm]\ntimout = 5\n",
                "config: train.ini:4: unknown key 'comm.timout'; did you mean 'comm.timeout'?", NULL, NULL);
    parse_fails(cfg, "[comm]\nzzzzzzzz = 1\n", "train.ini:2: unknown key 'comm.zzzzzzzz'",
                "comm.backend, comm.timeout, comm.retries, comm.verbose", NULL);
    parse_fails(cfg, "[comn]\ntimeout = 5\n", "train.ini:1: unknown section [comn]; did you mean [comm]?",
                "known sections: comm, train, data", NULL);
    parse_fails(cfg, "[network]\n", "train.ini:1: unknown section [network]", "known sections: comm, train, data", NULL);
    parse_fails(cfg, "timeout = 5\n", "train.ini:1:", "'timeout' is outside any section", NULL);
    parse_fails(cfg, "\ncomm.timeout = 5\n", "train.ini:2:", "'comm.timeout' is outside any section", "[comm]");
    parse_fails(cfg, "[comm\nretries = 1\n", "train.ini:1:", "malformed section header '[comm'", NULL);
    parse_fails(cfg, "[comm] x\n", "train.ini:1:", "malformed section header", NULL);
    parse_fails(cfg, "[]\n", "train.ini:1:", "malformed section header '[]'", NULL);
    parse_fails(cfg, "[co mm]\n", "train.ini:1:", "malformed section header", NULL);
    parse_fails(cfg, "[comm]\nretries 5\n", "train.ini:2:", "expected 'key = value'", "'retries 5'");
    parse_fails(cfg, "[comm]\n = 5\n", "train.ini:2:", "no key before '='", NULL);
    parse_fails(cfg, "[comm]\nretries = 1\n# again\nretries = 2\n", "train.ini:4: duplicate key 'comm.retries'",
                "already set at line 2", NULL);
    parse_fails(cfg, "[comm]\nretries = 12\n", "train.ini:2: comm.retries = \"12\" is out of range (integer in [0, 10])",
                NULL, NULL);
    parse_fails(cfg, "[comm]\nbackend = nccl\n", "train.ini:2: comm.backend = \"nccl\" is not one of the choices "
                "(one of auto|mpi|shm|tcp)", NULL, NULL);
    parse_fails(cfg, "[comm]\nverbose = si\n", "train.ini:2: comm.verbose = \"si\" is not a boolean", NULL, NULL);
    parse_fails(cfg, "[data]\nbuffer = 2GiB\n", "train.ini:2: data.buffer = \"2GiB\" is out of range "
                "(size in [4 KiB, 1 GiB])", NULL, NULL);
    parse_fails(cfg, "[train]\nname = a\x01z\n", "train.ini:2: train.name = \"a\\x01z\" contains a control character",
                NULL, NULL);
    /* None of the failed texts changed anything: parsing is all-or-nothing. */
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 3);
    assert_string_equal(weft_config_origin(cfg, "comm.retries"), "default");
}

static void test_failed_parse_is_atomic(void **state)
{
    weft_config *cfg = *state;
    parse_fails(cfg, "[comm]\nretries = 4\nbackend = shm\n[train]\nname = ok\nsteps = x\n", "train.ini:6:",
                "train.steps = \"x\"", NULL);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 3);
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "auto");
    assert_string_equal(weft_config_str(cfg, "train.name"), "run");
}

static void test_hostile_bytes(void **state)
{
    weft_config *cfg = *state;
    static const char nul[] = "[comm]\nretries = 1\0 2\n";
    weft_error_clear();
    assert_int_equal(weft_config_parse_string(cfg, nul, sizeof nul - 1, "train.ini"), WEFT_ECONFIG);
    has("train.ini:2:");
    has("NUL");

    size_t n = 20000;
    char *text = malloc(n + 32);
    assert_non_null(text);
    strcpy(text, "[comm]\n# x\nretries = ");
    memset(text + strlen(text), '1', n);
    text[22 + n] = '\0';
    assert_int_equal(parse(cfg, text), WEFT_ECONFIG);
    has("train.ini:3: line is longer than 16384 bytes");
    free(text);

    parse_fails(cfg, "[comm]\n\xff\xfe = 1\n", "train.ini:2: unknown key 'comm.\\xff\\xfe'", NULL, NULL);
    parse_fails(cfg, "[\xc3\xa9t\xc3\xa9]\n", "train.ini:1: malformed section header '[\xc3\xa9t\xc3\xa9]'", NULL, NULL);
    assert_int_equal(weft_config_int(cfg, "comm.retries"), 3);
}

/* ---- command-line keys --------------------------------------------------- */

static void test_unknown_on_command_line(void **state)
{
    weft_config *cfg = *state;
    set_fails(cfg, "comn.timeout", "5", "unknown key 'comn.timeout': there is no section [comn]",
              "(known sections: comm, train, data); did you mean 'comm.timeout'?");
    set_fails(cfg, "zzz.qqq", "5", "no section [zzz] (known sections: comm, train, data)", NULL);
    assert_null(strstr(weft_last_error(), "did you mean"));
    set_fails(cfg, "timeout", "5", "unknown key 'timeout'", "section.key");
    set_fails(cfg, "Comm.Timeout", "5", "did you mean 'comm.timeout'?", NULL);
}

/* ---- round trip ------------------------------------------------------------ */

static void assert_same(const weft_config *a, const weft_config *b)
{
    const weft_config_key *const *t;
    for (t = tables; *t; t++) {
        for (const weft_config_key *k = *t; k->name; k++) {
            switch (k->type) {
            case WEFT_CFG_INT:
            case WEFT_CFG_SIZE:
                assert_true(weft_config_int(a, k->name) == weft_config_int(b, k->name));
                break;
            case WEFT_CFG_FLOAT:
                assert_memory_equal(&(double){weft_config_float(a, k->name)},
                                    &(double){weft_config_float(b, k->name)}, sizeof(double));
                break;
            case WEFT_CFG_BOOL:
                assert_int_equal(weft_config_bool(a, k->name), weft_config_bool(b, k->name));
                break;
            default:
                assert_string_equal(weft_config_str(a, k->name), weft_config_str(b, k->name));
            }
        }
    }
}

static void roundtrip(const weft_config *cfg)
{
    weft_config *back = NULL;
    char *ini = weft_config_to_ini(cfg);
    assert_non_null(ini);
    assert_int_equal(weft_config_new(tables, &back), 0);
    int rc = weft_config_parse_string(back, ini, strlen(ini), "to_ini");
    if (rc)
        print_error("%s\n%s\n", weft_last_error(), ini);
    assert_int_equal(rc, 0);
    assert_same(cfg, back);
    char *again = weft_config_to_ini(back);
    assert_string_equal(ini, again);
    free(again);
    free(ini);
    weft_config_free(back);
}

static void test_to_ini(void **state)
{
    weft_config *cfg = *state;
    char *ini = weft_config_to_ini(cfg);
    assert_non_null(ini);
    assert_string_equal(ini, "[comm]\nbackend = auto\ntimeout = 300\nretries = 3\nverbose = false\n"
                             "\n[train]\nsteps = 1000\nlr = 0.0003\nname = run\nseed = -1\n"
                             "\n[data]\nbuffer = 64MiB\nlimit = 0\npath = \"\"\n");
    free(ini);
    roundtrip(cfg);
}

static void test_roundtrip_values(void **state)
{
    weft_config *cfg = *state;
    const char *names[] = {" lead", "trail ", "a#b", "a;b", "q\"uote", "back\\slash", "\"", "=x=", "[s]",
                           "caf\xc3\xa9", "\xff\xfe raw", "tab\tin", "\\\"", "x # y"};
    const char *floats[] = {"0.1", "1e-300", "-0", "123456789.123456789", "2.2250738585072014e-308",
                            "1.7976931348623157e308", "4.9e-324"};
    const char *sizes[] = {"0", "1", "1023", "1K", "1536", "5M", "1G", "3T", "9223372036854775807",
                           "1099511627775"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        set_ok(cfg, "train.name", names[i]);
        set_ok(cfg, "data.path", names[(i + 3) % (sizeof names / sizeof names[0])]);
        set_ok(cfg, "train.lr", floats[i % 7]);
        set_ok(cfg, "data.limit", sizes[i % 10]);
        set_ok(cfg, "comm.verbose", i % 2 ? "on" : "off");
        set_ok(cfg, "comm.backend", i % 2 ? "SHM" : "tcp");
        set_ok(cfg, "train.steps", i % 2 ? "-9223372036854775808" : "12");
        roundtrip(cfg);
    }
}

/* ---- table checks ------------------------------------------------------ */

static void new_fails(const weft_config_key *keys, const char *n1, const char *n2)
{
    const weft_config_key *const t[] = {comm_keys, keys, NULL};
    weft_config *cfg = (weft_config *)&cfg; /* must be reset to NULL */
    weft_error_clear();
    assert_int_equal(weft_config_new(t, &cfg), WEFT_EINTERNAL);
    assert_null(cfg);
    has(n1);
    if (n2)
        has(n2);
}

static void test_table_checks(void **state)
{
    (void)state;
    const weft_config_key dup[] = {{"comm.retries", WEFT_CFG_INT, "1", WEFT_UNBOUNDED, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key upper[] = {{"Comm.x", WEFT_CFG_INT, "1", WEFT_UNBOUNDED, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key nodot[] = {{"nodot", WEFT_CFG_INT, "1", WEFT_UNBOUNDED, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key twodots[] = {{"a.b.c", WEFT_CFG_INT, "1", WEFT_UNBOUNDED, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key space[] = {{"a.b c", WEFT_CFG_INT, "1", WEFT_UNBOUNDED, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key baddef[] = {{"x.n", WEFT_CFG_INT, "many", 0, 5, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key outdef[] = {{"x.n", WEFT_CFG_FLOAT, "9", 0, 5, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key nochoice[] = {{"x.e", WEFT_CFG_ENUM, "a", 0, 0, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key badchoice[] = {{"x.e", WEFT_CFG_ENUM, "a", 0, 0, "a||b", "x"}, WEFT_CONFIG_END};
    const weft_config_key dupchoice[] = {{"x.e", WEFT_CFG_ENUM, "a", 0, 0, "a|b|A", "x"}, WEFT_CONFIG_END};
    const weft_config_key defchoice[] = {{"x.e", WEFT_CFG_ENUM, "c", 0, 0, "a|b", "x"}, WEFT_CONFIG_END};
    const weft_config_key nodoc[] = {{"x.s", WEFT_CFG_STRING, "", 0, 0, NULL, NULL}, WEFT_CONFIG_END};
    const weft_config_key nodef[] = {{"x.s", WEFT_CFG_STRING, NULL, 0, 0, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key badsize[] = {{"x.z", WEFT_CFG_SIZE, "1Q", WEFT_UNBOUNDED, NULL, "x"}, WEFT_CONFIG_END};
    new_fails(dup, "'comm.retries' is declared twice", NULL);
    new_fails(upper, "'Comm.x'", "section.key");
    new_fails(nodot, "'nodot'", "section.key");
    new_fails(twodots, "'a.b.c'", NULL);
    new_fails(space, "'a.b c'", NULL);
    new_fails(baddef, "bug in a key table, the default: x.n = \"many\" is not an integer (integer in [0, 5])", NULL);
    new_fails(outdef, "x.n = \"9\" is out of range", NULL);
    new_fails(nochoice, "'x.e' needs choices", NULL);
    new_fails(badchoice, "'x.e' needs choices", NULL);
    new_fails(dupchoice, "'x.e' needs choices", NULL);
    new_fails(defchoice, "x.e = \"c\" is not one of the choices (one of a|b)", NULL);
    new_fails(nodoc, "'x.s'", "doc");
    new_fails(nodef, "'x.s'", "default");
    new_fails(badsize, "x.z = \"1Q\"", NULL);
    const weft_config_key nanbound[] = {{"x.f", WEFT_CFG_FLOAT, "1", 0, NAN, NULL, "x"}, WEFT_CONFIG_END};
    const weft_config_key badtype[] = {{"x.t", (weft_config_type)42, "1", 0, 1, NULL, "x"}, WEFT_CONFIG_END};
    new_fails(nanbound, "'x.f' has a NaN bound", NULL);
    new_fails(badtype, "'x.t' has no valid type", NULL);

    weft_config *cfg = NULL;
    const weft_config_key *const none[] = {NULL};
    assert_int_equal(weft_config_new(none, &cfg), 0); /* no keys is a valid (empty) configuration */
    char *ini = weft_config_to_ini(cfg);
    assert_string_equal(ini, "");
    free(ini);
    assert_int_equal(parse(cfg, "# nothing\n"), 0);
    assert_int_equal(parse(cfg, "[comm]\n"), 0); /* another weft program's section: skipped */
    assert_int_equal(parse(cfg, "[network]\n"), WEFT_ECONFIG);
    weft_config_free(cfg);
    assert_int_equal(weft_config_new(NULL, &cfg), WEFT_EINVAL);
}

/* ---- getters that are bugs ----------------------------------------------- */

/* Runs fn in a child; passes if the child exits 70 (weft_bug, not
 * SIGABRT) having said why on stderr, with want in the message. */
static void assert_bug_exit(void (*fn)(const weft_config *), const weft_config *cfg, const char *want)
{
    char path[] = "/tmp/weft-test-config-bug.XXXXXX", msg[2048] = "";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(fd, 2) < 0)
            _exit(3);
        fn(cfg);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    ssize_t n = pread(fd, msg, sizeof msg - 1, 0);
    msg[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), WEFT_EXIT_SOFTWARE);
    if (!strstr(msg, want))
        fail_msg("stderr \"%s\" does not say \"%s\"", msg, want);
}

static void get_undeclared(const weft_config *cfg) { (void)weft_config_int(cfg, "comm.nope"); }
static void get_wrong_type(const weft_config *cfg) { (void)weft_config_float(cfg, "comm.retries"); }
static void get_str_of_bool(const weft_config *cfg) { (void)weft_config_str(cfg, "comm.verbose"); }
static void get_origin_undeclared(const weft_config *cfg) { (void)weft_config_origin(cfg, "x.y"); }
static void get_bool_of_int(const weft_config *cfg) { (void)weft_config_bool(cfg, "train.steps"); }

static void test_getter_bugs_exit_70(void **state)
{
    weft_config *cfg = *state;
    assert_bug_exit(get_undeclared, cfg, "weft_config_int(\"comm.nope\"): no such key is declared");
    assert_bug_exit(get_wrong_type, cfg, "weft_config_float(\"comm.retries\"): the key is declared as");
    assert_bug_exit(get_str_of_bool, cfg, "weft_config_str(\"comm.verbose\")");
    assert_bug_exit(get_origin_undeclared, cfg, "weft_config_origin(\"x.y\"): no such key is declared");
    assert_bug_exit(get_bool_of_int, cfg, "weft_config_bool(\"train.steps\")");
    /* SIZE reads as an int, ENUM as a string: not bugs. */
    assert_int_equal(weft_config_int(cfg, "data.buffer"), 64 << 20);
    assert_string_equal(weft_config_str(cfg, "comm.backend"), "auto");
}

/* ---- documentation ------------------------------------------------------- */

/* The output of fn into *buf (malloc'ed by open_memstream). */
static void capture(void (*fn)(const weft_config_key *const *, FILE *), char **buf)
{
    size_t len = 0;
    FILE *f = open_memstream(buf, &len);
    assert_non_null(f);
    fn(tables, f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(*buf);
}

static void test_help(void **state)
{
    (void)state;
    char *h = NULL;
    capture(weft_config_help, &h);
    for (const weft_config_key *const *t = tables; *t; t++)
        for (const weft_config_key *k = *t; k->name; k++) {
            char head[24]; /* long docs wrap, so look for their start */
            snprintf(head, sizeof head, "%s", k->doc);
            assert_non_null(strstr(h, k->name));
            assert_non_null(strstr(h, head));
        }
    assert_non_null(strstr(h, "[comm]"));
    assert_non_null(strstr(h, "[train]"));
    assert_non_null(strstr(h, "[data]"));
    assert_non_null(strstr(h, "auto|mpi|shm|tcp"));
    assert_non_null(strstr(h, "[4 KiB, 1 GiB]"));
    assert_non_null(strstr(h, "[1, 86400]"));
    assert_non_null(strstr(h, "no limit"));
    assert_non_null(strstr(h, "\"\"")); /* the empty default of data.path */
    /* train.seed is listed under [train], before [data]. */
    assert_true(strstr(h, "train.seed") < strstr(h, "[data]"));
    /* Columns line up: every key row puts the type at the same column. */
    const char *row = strstr(h, "  comm.backend"), *row2 = strstr(h, "  data.buffer");
    assert_non_null(row);
    assert_non_null(row2);
    assert_int_equal(strstr(row, "enum") - row, strstr(row2, "size") - row2);
    for (char *line = h, *nl; (nl = strchr(line, '\n')); line = nl + 1)
        assert_true(nl - line <= 100);
    free(h);
}

static void test_markdown(void **state)
{
    (void)state;
    char *m = NULL;
    capture(weft_config_markdown, &m);
    for (const weft_config_key *const *t = tables; *t; t++)
        for (const weft_config_key *k = *t; k->name; k++) {
            char cell[128];
            snprintf(cell, sizeof cell, "| `%s` | ", k->name);
            assert_non_null(strstr(m, cell));
            assert_non_null(strstr(m, k->doc));
        }
    assert_non_null(strstr(m, "## [comm]\n\n| Key | Type | Default | Allowed | Description |\n|---|"));
    assert_non_null(strstr(m, "| `comm.backend` | enum | `auto` | auto\\|mpi\\|shm\\|tcp | "));
    assert_non_null(strstr(m, "| `data.buffer` | size | `64MiB` | [4 KiB, 1 GiB] | "));
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_defaults),
        T(test_file_then_override),
        T(test_files_apply_in_order),
        T(test_args_keep_others),
        T(test_args_errors),
        T(test_load_file),
        T(test_set_origin),
        T(test_adopt),
        T(test_int),
        T(test_float),
        T(test_bool),
        T(test_enum),
        T(test_size),
        T(test_string),
        T(test_quoted_strings),
        T(test_comments),
        T(test_crlf_bom_no_newline),
        T(test_sections_and_keys),
        T(test_foreign_sections),
        T(test_error_messages),
        T(test_failed_parse_is_atomic),
        T(test_hostile_bytes),
        T(test_unknown_on_command_line),
        T(test_to_ini),
        T(test_roundtrip_values),
        T(test_table_checks),
        T(test_getter_bugs_exit_70),
        T(test_help),
        T(test_markdown),
#undef T
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
