/*
 * stop.h -- the stop request: the signals a scheduler sends before a
 * preemption or a time limit (SIGUSR1, SIGTERM by default; sched.signals),
 * turned into a flag the training loop polls.
 *
 * The handler only stores the signal number in a sig_atomic_t, which is all
 * that is async-signal-safe; everything else (agreeing on a step across
 * ranks, the checkpoint, the exit) happens in the loop that polls
 * weft_stop_requested(). The flag is per process: combining it across ranks
 * is the caller's job (weft_comm_any_stop in collectives/agree.h), so that
 * every rank stops at the same step.
 *
 * Where it is polled (weft-train): once per step and before each evaluation
 * batch, each time agreed across ranks. Not inside the data loader's wait:
 * a rank waiting for its batch must still run that step's collectives with
 * the others, so leaving mid-step would only move the hang; it reaches the
 * next agreement as soon as its data arrives.
 *
 * States: clear --signal or weft_stop_request--> requested. It never clears
 * (a stopping job stays stopping); a second signal changes nothing.
 */
#ifndef WEFT_RUNTIME_STOP_H
#define WEFT_RUNTIME_STOP_H

/* Parse a comma-separated signal list ("USR1,TERM", "SIGUSR2", "10") into
 * signo[] (at most max); *n gets the count. WEFT_ECONFIG naming the bad
 * entry, or a signal that cannot be caught (KILL, STOP). */
int weft_stop_parse(const char *spec, int *signo, int max, int *n);

/* Install the handler for the signals in spec (SA_RESTART, so system calls
 * in flight are resumed, not failed). */
int weft_stop_install(const char *spec);

/* 1 while handlers are installed. */
int weft_stop_installed(void);

/* Restore the previous dispositions. */
void weft_stop_uninstall(void);

/* The signal that asked this process to stop, or 0. */
int weft_stop_requested(void);

/* Ask to stop as if signal signo had arrived (tests, programmatic stops). */
void weft_stop_request(int signo);

/* "SIGUSR1" for 10; "signal N" for others. */
const char *weft_signal_name(int signo);

#endif
