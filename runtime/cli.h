/*
 * cli.h -- the one way weft's programs read their options: getopt_long with
 * GNU permutation, so "--opt value", "--opt=value", "-o value" and "-ovalue"
 * all work, options may come before or after operands, and "--" ends the
 * options. Errors name the option as it was typed and point at --help; every
 * function that rejects something prints one line on stderr and returns
 * WEFT_EXIT_USAGE (64), which main() returns as it is.
 *
 * Configuration arguments (--config FILE, --section.key=value) are not
 * options here: weft_init / weft_config_parse_args (runtime/config.h) take
 * them out of argv first, wherever they stand, and what is left is parsed
 * with this. Programs without a configuration use it on argv directly.
 *
 * A program declares one table of struct option. An entry whose val is a
 * printable ASCII character also has that short form ({"output", 'o'} is
 * -o too); an entry with val >= 256 is long only. Long options may be
 * abbreviated to any unambiguous prefix, as getopt_long allows.
 *
 * getopt_long keeps global state, so one weft_cli is parsed at a time, from
 * one thread; weft_cli_init restarts the scan.
 */
#ifndef WEFT_RUNTIME_CLI_H
#define WEFT_RUNTIME_CLI_H

#include "runtime/api.h"
#include <getopt.h>

enum {
    WEFT_CLI_QUIET = 1,   /* print no messages (e.g. ranks other than 0); still return 64 */
    WEFT_CLI_COMMAND = 2, /* stop at the first operand: it names a command whose own
                             options follow (weft-data prepare ..., weft-ckpt diff ...) */
};

/* weft_cli_next's answers besides an option's val. */
enum {
    WEFT_CLI_END = -1,   /* no more options: the operands are ops[0..nops-1] */
    WEFT_CLI_ERROR = -2, /* a bad option; the message is printed: exit WEFT_EXIT_USAGE */
};

typedef struct {
    /* from weft_cli_init */
    const char *prog;               /* message prefix: "weft-data prepare" */
    int argc;
    char **argv;                    /* argv[0] is the program (or command) name */
    const struct option *longopts;
    int flags;                      /* WEFT_CLI_* */
    /* after each weft_cli_next */
    const char *arg;                /* the option's value; NULL when it has none */
    char name[64];                  /* the option as typed, without "=value": "--op", "-o" */
    /* after WEFT_CLI_END: the operands, in order (argv is permuted) */
    char **ops;
    int nops;
    char shortopts[200];
} weft_cli;

/* Starts a scan of argv[1..argc-1]. prog prefixes every message and names
 * the --help to try. longopts ends with an all-zero entry. */
WEFT_API void weft_cli_init(weft_cli *cli, const char *prog, int argc, char **argv, const struct option *longopts,
                   int flags);

/* The next option's val (cli->arg holds its value), WEFT_CLI_END, or
 * WEFT_CLI_ERROR after printing what was wrong: an unknown or ambiguous
 * option, a missing value, or a value given to an option that takes none.
 * Entries with a flag pointer are set and skipped, as getopt_long does. */
WEFT_API int weft_cli_next(weft_cli *cli);

/* After WEFT_CLI_END: 0 when there are min..max operands (max < 0: no
 * limit), else prints "PROG: expected WHAT" and returns WEFT_EXIT_USAGE. */
WEFT_API int weft_cli_operands(weft_cli *cli, int min, int max, const char *what);

/* For a program with no options of its own (configuration arguments aside,
 * taken out first): scans argv, rejecting any option, and checks that there
 * are min..max operands (max < 0: no limit), then in cli->ops. 0, or
 * WEFT_EXIT_USAGE with the message printed. */
WEFT_API int weft_cli_operands_only(weft_cli *cli, const char *prog, int argc, char **argv, int flags, int min,
                                    int max, const char *what);

/* The current option's value as an integer / a finite number in [min, max];
 * else prints "PROG: --iters 'x': expected an integer in [1, 1000]" and
 * returns WEFT_EXIT_USAGE. */
WEFT_API int weft_cli_long(weft_cli *cli, long long min, long long max, long long *out);
WEFT_API int weft_cli_double(weft_cli *cli, double min, double max, double *out);

/* Rejects the current option's value: prints "PROG: NAME 'VALUE': expected
 * <what follows>" and returns WEFT_EXIT_USAGE. */
WEFT_API int weft_cli_bad_value(const weft_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Any other usage error: prints "PROG: <message>" and the --help hint,
 * returns WEFT_EXIT_USAGE. */
WEFT_API int weft_cli_error(const weft_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 1 if opt ("--help", "-h") stands in argv[1..] before any "--", exactly
 * or as opt=VALUE. For what must be answered before weft_init (--help, so
 * that it needs neither MPI nor a valid configuration). */
WEFT_API int weft_cli_has(int argc, char **argv, const char *opt);

/* weft_cli_has(argc, argv, "--help") || weft_cli_has(argc, argv, "-h") */
WEFT_API int weft_cli_wants_help(int argc, char **argv);

#endif
