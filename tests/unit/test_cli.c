/*
 * test_cli.c -- runtime/cli.h: getopt_long with permutation ("--opt value",
 * "--opt=value", short forms from the table, options after operands, "--"),
 * command mode, and each kind of usage error with its message on stderr
 * (captured) and WEFT_EXIT_USAGE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cli.h"
#include "runtime/error.h"

enum { OPT_FORCE = 256, OPT_TOL, OPT_VOCAB, OPT_VAL };

static const struct option opts[] = {
    {"output", required_argument, NULL, 'o'},
    {"force", no_argument, NULL, OPT_FORCE},
    {"tol", required_argument, NULL, OPT_TOL},
    {"vocab", required_argument, NULL, OPT_VOCAB},
    {"val-fraction", required_argument, NULL, OPT_VAL},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* stderr into a temporary file between capture_begin and capture_end,
 * which puts stderr back and returns what was written (in err, n bytes). */
typedef struct {
    int saved;
    FILE *tmp;
} capture;

static capture capture_begin(void)
{
    fflush(stderr);
    capture k = {dup(2), tmpfile()};
    assert_non_null(k.tmp);
    dup2(fileno(k.tmp), 2);
    return k;
}

static void capture_end(capture k, char *err, size_t n)
{
    fflush(stderr);
    dup2(k.saved, 2);
    close(k.saved);
    rewind(k.tmp);
    err[fread(err, 1, n - 1, k.tmp)] = '\0';
    fclose(k.tmp);
}

/* What one parse saw: options as "o=ds,force,tol=0.5", the operands, the
 * last answer (WEFT_CLI_END or WEFT_CLI_ERROR) and what went to stderr. */
typedef struct {
    char seen[256], ops[256], err[1024];
    int last;
} parse;

static parse run(int flags, int argc, ...)
{
    static char store[16][64];
    char *argv[17];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = strcpy(store[i], va_arg(ap, const char *));
    va_end(ap);
    argv[argc] = NULL;

    parse p;
    memset(&p, 0, sizeof p);
    capture k = capture_begin();

    weft_cli cli;
    int c;
    weft_cli_init(&cli, "prog", argc, argv, opts, flags);
    while ((c = weft_cli_next(&cli)) >= 0) {
        size_t n = strlen(p.seen);
        const char *name = c == 'o' ? "o" : c == 'h' ? "h" : c == OPT_FORCE ? "force" : c == OPT_TOL ? "tol"
                         : c == OPT_VOCAB ? "vocab" : "val";
        snprintf(p.seen + n, sizeof p.seen - n, "%s%s%s%s", n ? "," : "", name, cli.arg ? "=" : "",
                 cli.arg ? cli.arg : "");
    }
    p.last = c;
    for (int i = 0; c == WEFT_CLI_END && i < cli.nops; i++) {
        size_t n = strlen(p.ops);
        snprintf(p.ops + n, sizeof p.ops - n, "%s%s", i ? " " : "", cli.ops[i]);
    }

    capture_end(k, p.err, sizeof p.err);
    return p;
}

static void test_forms_and_permutation(void **state)
{
    (void)state;
    parse p = run(0, 6, "prog", "in1", "-o", "ds", "in2", "--tol=0.5");
    assert_int_equal(p.last, WEFT_CLI_END);
    assert_string_equal(p.seen, "o=ds,tol=0.5");
    assert_string_equal(p.ops, "in1 in2");
    assert_string_equal(p.err, "");

    p = run(0, 7, "prog", "--output", "ds", "in", "--tol", "1", "--force");
    assert_string_equal(p.seen, "o=ds,tol=1,force");
    assert_string_equal(p.ops, "in");

    p = run(0, 4, "prog", "-ods", "--output=x", "in");
    assert_string_equal(p.seen, "o=ds,o=x");
    assert_string_equal(p.ops, "in");

    /* Unambiguous prefixes, values that start with '-', and "--". */
    p = run(0, 7, "prog", "--out=ds", "--vo", "-5", "--", "--force", "-o");
    assert_int_equal(p.last, WEFT_CLI_END);
    assert_string_equal(p.seen, "o=ds,vocab=-5");
    assert_string_equal(p.ops, "--force -o");
}

static void test_command_mode(void **state)
{
    (void)state;
    parse p = run(WEFT_CLI_COMMAND, 5, "prog", "-h", "prepare", "-o", "ds");
    assert_int_equal(p.last, WEFT_CLI_END);
    assert_string_equal(p.seen, "h");
    assert_string_equal(p.ops, "prepare -o ds");
}

static void test_errors(void **state)
{
    (void)state;
    parse p = run(0, 3, "prog", "in", "--bogus=1");
    assert_int_equal(p.last, WEFT_CLI_ERROR);
    assert_non_null(strstr(p.err, "prog: unknown option '--bogus'"));
    assert_non_null(strstr(p.err, "Try 'prog --help'"));

    p = run(0, 2, "prog", "-x");
    assert_int_equal(p.last, WEFT_CLI_ERROR);
    assert_non_null(strstr(p.err, "unknown option '-x'"));

    p = run(0, 3, "prog", "--force", "-hx");
    assert_int_equal(p.last, WEFT_CLI_ERROR);
    assert_string_equal(p.seen, "force,h");
    assert_non_null(strstr(p.err, "unknown option '-x'"));

    p = run(0, 3, "prog", "--tol=1", "-xh"); /* optind still on "-xh" */
    assert_int_equal(p.last, WEFT_CLI_ERROR);
    assert_non_null(strstr(p.err, "unknown option '-x'"));

    p = run(0, 3, "prog", "in", "--output");
    assert_int_equal(p.last, WEFT_CLI_ERROR);
    assert_non_null(strstr(p.err, "option '--output' needs a value"));

    p = run(0, 2, "prog", "-o");
    assert_non_null(strstr(p.err, "option '-o' needs a value"));

    p = run(0, 2, "prog", "--force=yes");
    assert_int_equal(p.last, WEFT_CLI_ERROR);
    assert_non_null(strstr(p.err, "option '--force' takes no value"));

    p = run(0, 3, "prog", "--v", "1");
    assert_int_equal(p.last, WEFT_CLI_ERROR);
    assert_non_null(strstr(p.err, "option '--v' is ambiguous: it could be --vocab, --val-fraction"));

    p = run(WEFT_CLI_QUIET, 2, "prog", "--bogus");
    assert_int_equal(p.last, WEFT_CLI_ERROR);
    assert_string_equal(p.err, "");
}

static void test_values_and_operands(void **state)
{
    (void)state;
    static char a0[] = "prog", a1[] = "--tol", a2[] = "abc", a3[] = "x", a4[] = "y";
    char *argv[] = {a0, a1, a2, a3, a4, NULL};
    weft_cli cli;
    long long n;
    double d;
    capture k = capture_begin();

    weft_cli_init(&cli, "prog", 5, argv, opts, 0);
    assert_int_equal(weft_cli_next(&cli), OPT_TOL);
    assert_string_equal(cli.name, "--tol");
    assert_int_equal(weft_cli_long(&cli, 0, 10, &n), WEFT_EXIT_USAGE);
    assert_int_equal(weft_cli_double(&cli, 0, 1, &d), WEFT_EXIT_USAGE);
    cli.arg = "7";
    assert_int_equal(weft_cli_long(&cli, 0, 10, &n), 0);
    assert_int_equal(n, 7);
    cli.arg = "11";
    assert_int_equal(weft_cli_long(&cli, 0, 10, &n), WEFT_EXIT_USAGE);
    cli.arg = "0.25";
    assert_int_equal(weft_cli_double(&cli, 0, 1, &d), 0);
    assert_true(d == 0.25);
    assert_int_equal(weft_cli_next(&cli), WEFT_CLI_END);
    assert_int_equal(cli.nops, 2);
    assert_int_equal(weft_cli_operands(&cli, 2, 2, "A B"), 0);
    assert_int_equal(weft_cli_operands(&cli, 1, 1, "one FILE"), WEFT_EXIT_USAGE);
    assert_int_equal(weft_cli_operands(&cli, 3, -1, "three or more"), WEFT_EXIT_USAGE);

    char err[2048];
    capture_end(k, err, sizeof err);
    assert_non_null(strstr(err, "prog: --tol 'abc': expected an integer in [0, 10]"));
    assert_non_null(strstr(err, "prog: --tol 'abc': expected a number in [0, 1]"));
    assert_non_null(strstr(err, "prog: unexpected operand 'y' (expected one FILE)"));
    assert_non_null(strstr(err, "prog: expected three or more"));
}

/* A program without options of its own: operands counted, any option refused. */
static void test_operands_only(void **state)
{
    (void)state;
    static char a0[] = "bench", a1[] = "12", a2[] = "zero", a3[] = "--steps", a4[] = "3";
    char *ok_argv[] = {a0, a1, a2, NULL}, *bad_argv[] = {a0, a1, a3, a4, NULL};
    weft_cli cli;
    capture k = capture_begin();

    assert_int_equal(weft_cli_operands_only(&cli, "bench", 3, ok_argv, 0, 0, 2, "[STEPS] [zero]"), 0);
    assert_int_equal(cli.nops, 2);
    assert_string_equal(cli.ops[0], "12");
    assert_string_equal(cli.ops[1], "zero");
    assert_int_equal(weft_cli_operands_only(&cli, "bench", 3, ok_argv, 0, 0, 1, "[STEPS]"), WEFT_EXIT_USAGE);
    assert_int_equal(weft_cli_operands_only(&cli, "bench", 4, bad_argv, 0, 0, 2, "[STEPS] [zero]"), WEFT_EXIT_USAGE);

    char err[2048];
    capture_end(k, err, sizeof err);
    assert_non_null(strstr(err, "bench: unexpected operand 'zero' (expected [STEPS])"));
    assert_non_null(strstr(err, "bench: unknown option '--steps'"));
}

static void test_has(void **state)
{
    (void)state;
    static char a0[] = "p", a1[] = "--comm.backend=shm", a2[] = "--help", a3[] = "--", a4[] = "-h";
    char *argv[] = {a0, a1, a2, a3, a4, NULL};
    assert_int_equal(weft_cli_has(5, argv, "--help"), 1);
    assert_int_equal(weft_cli_has(5, argv, "-h"), 0); /* after "--" */
    assert_int_equal(weft_cli_has(5, argv, "--comm.backend"), 1);
    assert_int_equal(weft_cli_has(5, argv, "--comm"), 0);
    assert_int_equal(weft_cli_wants_help(5, argv), 1);
    assert_int_equal(weft_cli_wants_help(2, argv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms_and_permutation),
        cmocka_unit_test(test_command_mode),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_values_and_operands),
        cmocka_unit_test(test_operands_only),
        cmocka_unit_test(test_has),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
