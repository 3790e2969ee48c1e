/*
 * cli.c -- weft_cli_*: getopt_long with GNU permutation for every program,
 * with errors that name the option as typed and point at --help (exit 64).
 * See cli.h.
 *
 * getopt_long runs silent (opterr = 0, optstring starting with ':') and its
 * '?' and ':' answers are turned into messages here: which option, and
 * whether it was unknown, ambiguous, missing its value or given one it does
 * not take.
 */
#include "runtime/cli.h"
#include "runtime/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void vsay(const weft_cli *cli, const char *fmt, va_list ap)
{
    if (cli->flags & WEFT_CLI_QUIET)
        return;
    fprintf(stderr, "%s: ", cli->prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", cli->prog);
}

int weft_cli_error(const weft_cli *cli, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(cli, fmt, ap);
    va_end(ap);
    return WEFT_EXIT_USAGE;
}

int weft_cli_bad_value(const weft_cli *cli, const char *fmt, ...)
{
    if (!(cli->flags & WEFT_CLI_QUIET)) {
        va_list ap;
        fprintf(stderr, "%s: %s '%s': expected ", cli->prog, cli->name, cli->arg ? cli->arg : "");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s --help' for more information.\n", cli->prog);
    }
    return WEFT_EXIT_USAGE;
}

/* Short options from the table: val 'o' with a required value gives "o:". */
static void build_shortopts(weft_cli *cli)
{
    size_t n = 0, cap = sizeof cli->shortopts - 4;
    if (cli->flags & WEFT_CLI_COMMAND)
        cli->shortopts[n++] = '+';
    cli->shortopts[n++] = ':';
    for (const struct option *o = cli->longopts; o && o->name && n < cap; o++) {
        if (o->flag || o->val <= 0 || o->val > 127 || !isgraph(o->val) || o->val == ':' || o->val == '?' ||
            o->val == '-' || o->val == '+' || memchr(cli->shortopts, o->val, n))
            continue;
        cli->shortopts[n++] = (char)o->val;
        if (o->has_arg == required_argument)
            cli->shortopts[n++] = ':';
        else if (o->has_arg == optional_argument) {
            cli->shortopts[n++] = ':';
            cli->shortopts[n++] = ':';
        }
    }
    cli->shortopts[n] = '\0';
}

void weft_cli_init(weft_cli *cli, const char *prog, int argc, char **argv, const struct option *longopts, int flags)
{
    memset(cli, 0, sizeof *cli);
    cli->prog = prog;
    cli->argc = argc;
    cli->argv = argv;
    cli->longopts = longopts;
    cli->flags = flags;
    build_shortopts(cli);
    optind = 0; /* 0, not 1: glibc then restarts completely (permutation state too) */
    opterr = 0;
}

/* The long option typed in argv[optind - 1] ("--out=x" -> "--out"), or NULL
 * when that element is not a long option. */
static const char *typed_long(weft_cli *cli)
{
    if (optind < 1 || optind > cli->argc)
        return NULL;
    const char *a = cli->argv[optind - 1];
    if (!a || strncmp(a, "--", 2) != 0 || !a[2])
        return NULL;
    size_t len = strcspn(a, "=");
    snprintf(cli->name, sizeof cli->name, "%.*s", (int)(len < sizeof cli->name ? len : sizeof cli->name - 1), a);
    return cli->name;
}

/* "--c" matches --config-markdown and --check: list them. */
static int ambiguous(weft_cli *cli)
{
    char list[256] = "";
    size_t len = strlen(cli->name + 2), used = 0;
    int n = 0;
    for (const struct option *o = cli->longopts; o && o->name; o++)
        if (strncmp(o->name, cli->name + 2, len) == 0) {
            used += (size_t)snprintf(list + used, sizeof list - used, "%s--%s", n ? ", " : "", o->name);
            used = used < sizeof list ? used : sizeof list - 1;
            n++;
        }
    if (n < 2)
        return 0;
    weft_cli_error(cli, "option '%s' is ambiguous: it could be %s", cli->name, list);
    return 1;
}

static const struct option *by_val(const weft_cli *cli, int val)
{
    for (const struct option *o = cli->longopts; o && o->name; o++)
        if (!o->flag && o->val == val)
            return o;
    return NULL;
}

static int bad_option(weft_cli *cli, int c)
{
    int v = optopt;
    if (c == ':') { /* a value is missing: typed long, or short as the last thing of its element */
        if (!typed_long(cli))
            snprintf(cli->name, sizeof cli->name, "-%c", v);
        return weft_cli_error(cli, "option '%s' needs a value", cli->name);
    }
    if (v == 0) { /* an unknown or ambiguous long option */
        if (!typed_long(cli))
            snprintf(cli->name, sizeof cli->name, "%s", "--?");
        if (ambiguous(cli))
            return WEFT_EXIT_USAGE;
        return weft_cli_error(cli, "unknown option '%s'", cli->name);
    }
    /* A known option's val: a long option given "=value" when it takes none
     * (checked against what was typed: an unknown short option in the middle
     * of "-xyz" leaves optind on its own element). */
    const struct option *o = by_val(cli, v);
    if (o && o->has_arg == no_argument && typed_long(cli) && strchr(cli->argv[optind - 1], '=') &&
        strncmp(o->name, cli->name + 2, strlen(cli->name + 2)) == 0) {
        snprintf(cli->name, sizeof cli->name, "--%s", o->name);
        return weft_cli_error(cli, "option '%s' takes no value", cli->name);
    }
    if (v > 0 && v < 128 && isgraph(v))
        snprintf(cli->name, sizeof cli->name, "-%c", v);
    else
        snprintf(cli->name, sizeof cli->name, "%s", "-?");
    return weft_cli_error(cli, "unknown option '%s'", cli->name);
}

int weft_cli_next(weft_cli *cli)
{
    for (;;) {
        int idx = -1;
        cli->arg = NULL;
        cli->name[0] = '\0';
        int c = getopt_long(cli->argc, cli->argv, cli->shortopts, cli->longopts, &idx);
        if (c == -1) {
            cli->ops = cli->argv + optind;
            cli->nops = cli->argc - optind;
            return WEFT_CLI_END;
        }
        if (c == '?' || c == ':') {
            bad_option(cli, c);
            return WEFT_CLI_ERROR;
        }
        cli->arg = optarg;
        if (idx >= 0)
            snprintf(cli->name, sizeof cli->name, "--%s", cli->longopts[idx].name);
        else
            snprintf(cli->name, sizeof cli->name, "-%c", c);
        if (c == 0) /* the entry had a flag pointer: getopt_long set it */
            continue;
        return c;
    }
}

int weft_cli_operands(weft_cli *cli, int min, int max, const char *what)
{
    if (cli->nops < min)
        return weft_cli_error(cli, "expected %s", what);
    if (max >= 0 && cli->nops > max)
        return weft_cli_error(cli, "unexpected operand '%s' (expected %s)", cli->ops[max], what);
    return 0;
}

int weft_cli_operands_only(weft_cli *cli, const char *prog, int argc, char **argv, int flags, int min, int max,
                           const char *what)
{
    static const struct option none[] = {{NULL, 0, NULL, 0}};
    weft_cli_init(cli, prog, argc, argv, none, flags);
    if (weft_cli_next(cli) != WEFT_CLI_END)
        return WEFT_EXIT_USAGE; /* the message is printed */
    return weft_cli_operands(cli, min, max, what);
}

int weft_cli_long(weft_cli *cli, long long min, long long max, long long *out)
{
    const char *s = cli->arg ? cli->arg : "";
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max)
        return weft_cli_bad_value(cli, "an integer in [%lld, %lld]", min, max);
    *out = v;
    return 0;
}

int weft_cli_double(weft_cli *cli, double min, double max, double *out)
{
    const char *s = cli->arg ? cli->arg : "";
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || !(v >= min && v <= max))
        return weft_cli_bad_value(cli, "a number in [%g, %g]", min, max);
    *out = v;
    return 0;
}

int weft_cli_has(int argc, char **argv, const char *opt)
{
    size_t n = strlen(opt);
    for (int i = 1; i < argc && argv[i]; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strncmp(argv[i], opt, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
            return 1;
    }
    return 0;
}

int weft_cli_wants_help(int argc, char **argv)
{
    return weft_cli_has(argc, argv, "--help") || weft_cli_has(argc, argv, "-h");
}
