/*
 * slurm.c -- scontrol as a child process: comments, requeue. See slurm.h.
 */
#include "runtime/slurm.h"
#include "runtime/error.h"
#include "runtime/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int weft_slurm_restart_count(void)
{
    const char *s = getenv("SLURM_RESTART_COUNT");
    return s ? atoi(s) : 0;
}

int weft_slurm_spawn(char *const argv[], pid_t *pid)
{
    char *full[16];
    int n = 0;
    full[n++] = "scontrol";
    for (int i = 0; argv[i] && n < 15; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    int e = posix_spawnp(pid, "scontrol", &fa, NULL, full, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0)
        return weft_error(WEFT_EIO, "cannot run scontrol %s: %s (is Slurm's client installed on this node?)",
                          argv[0], strerror(e));
    return 0;
}

int weft_slurm_reap(pid_t pid, int *status)
{
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == 0)
        return 0;
    if (r < 0)
        *status = 127;
    else
        *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 1;
}

int weft_slurm_run(char *const argv[], double timeout_s)
{
    pid_t pid;
    WEFT_CHECK(weft_slurm_spawn(argv, &pid));
    int64_t t0 = weft_now_ns();
    int status = 0;
    while (!weft_slurm_reap(pid, &status)) {
        if (weft_now_ns() - t0 > (int64_t)(timeout_s * 1e9)) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return weft_error(WEFT_EIO, "scontrol %s %s did not finish within %g s (slurmctld unreachable?)",
                              argv[0], argv[1] ? argv[1] : "", timeout_s);
        }
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    if (status != 0)
        return weft_error(WEFT_EIO, "scontrol %s %s failed with exit status %d", argv[0], argv[1] ? argv[1] : "",
                          status);
    return 0;
}

int weft_slurm_comment(const char *job, const char *text, pid_t *pid)
{
    char jobarg[96], comment[600];
    snprintf(jobarg, sizeof jobarg, "JobId=%s", job);
    snprintf(comment, sizeof comment, "Comment=%s", text);
    char *argv[] = {"update", jobarg, comment, NULL};
    return weft_slurm_spawn(argv, pid);
}

int weft_slurm_requeue(const char *job)
{
    char jobarg[96];
    snprintf(jobarg, sizeof jobarg, "%s", job);
    char *argv[] = {"requeue", jobarg, NULL};
    return weft_slurm_run(argv, 30);
}
