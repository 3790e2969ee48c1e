/*
 * stop.c -- signal handlers that set the stop flag. See stop.h.
 */
#include "runtime/stop.h"
#include "runtime/error.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SIGNALS 8

static volatile sig_atomic_t stop_signo;
static int installed[MAX_SIGNALS], ninstalled;
static struct sigaction previous[MAX_SIGNALS];

static const struct {
    const char *name;
    int signo;
} names[] = {
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"INT", SIGINT},
    {"HUP", SIGHUP},   {"QUIT", SIGQUIT}, {"ALRM", SIGALRM}, {"XCPU", SIGXCPU},
};

const char *weft_signal_name(int signo)
{
    static const char *const full[] = {"SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT",
                                       "SIGHUP",  "SIGQUIT", "SIGALRM", "SIGXCPU"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].signo == signo)
            return full[i];
    return "signal";
}

static void on_signal(int signo)
{
    if (!stop_signo)
        stop_signo = signo;
}

/* One entry: a name with or without "SIG", or a number. */
static int parse_one(const char *tok, int *signo)
{
    const char *s = strncasecmp(tok, "SIG", 3) == 0 ? tok + 3 : tok;
    if (isdigit((unsigned char)*s)) {
        char *end;
        long v = strtol(s, &end, 10);
        if (*end || v <= 0 || v >= NSIG)
            return weft_error(WEFT_ECONFIG, "sched.signals: '%s' is not a signal number (1..%d)", tok, NSIG - 1);
        *signo = (int)v;
    } else if (strcasecmp(s, "KILL") == 0 || strcasecmp(s, "STOP") == 0) {
        *signo = strcasecmp(s, "KILL") == 0 ? SIGKILL : SIGSTOP;
    } else {
        *signo = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcasecmp(s, names[i].name) == 0)
                *signo = names[i].signo;
        if (!*signo)
            return weft_error(WEFT_ECONFIG, "sched.signals: unknown signal '%s' (use USR1, USR2, TERM, INT, HUP, "
                                            "QUIT, ALRM, XCPU or a number)", tok);
    }
    if (*signo == SIGKILL || *signo == SIGSTOP)
        return weft_error(WEFT_ECONFIG, "sched.signals: '%s' cannot be caught", tok);
    return 0;
}

int weft_stop_parse(const char *spec, int *signo, int max, int *n)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec ? spec : "");
    *n = 0;
    for (char *save, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (*n == max)
            return weft_error(WEFT_ECONFIG, "sched.signals: more than %d signals in '%s'", max, spec);
        WEFT_CHECK(parse_one(tok, &signo[(*n)++]));
    }
    return 0;
}

int weft_stop_install(const char *spec)
{
    int sig[MAX_SIGNALS], n;
    WEFT_CHECK(weft_stop_parse(spec, sig, MAX_SIGNALS, &n));
    weft_stop_uninstall();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < n; i++) {
        if (sigaction(sig[i], &sa, &previous[ninstalled]) != 0)
            return weft_error(WEFT_EINTERNAL, "sigaction(%s) failed", weft_signal_name(sig[i]));
        installed[ninstalled++] = sig[i];
    }
    return 0;
}

void weft_stop_uninstall(void)
{
    for (int i = 0; i < ninstalled; i++)
        sigaction(installed[i], &previous[i], NULL);
    ninstalled = 0;
}

int weft_stop_requested(void) { return stop_signo; }

int weft_stop_installed(void) { return ninstalled > 0; }

void weft_stop_request(int signo)
{
    if (!stop_signo)
        stop_signo = signo;
}
