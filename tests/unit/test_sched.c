/*
 * test_sched.c -- the scheduler-facing pure parts: the stop-signal list and
 * handler (runtime/stop.h), and the three renderings of a report
 * (runtime/report.h): status.json, Prometheus text, the Slurm comment.
 * The rendered Prometheus text is also checked end to end by
 * tests/sched/promcheck.py against a live job.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/report.h"
#include "runtime/stop.h"

static void test_stop_parse(void **state)
{
    (void)state;
    int sig[8], n;
    assert_int_equal(weft_stop_parse("USR1,TERM", sig, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sig[0], SIGUSR1);
    assert_int_equal(sig[1], SIGTERM);
    assert_int_equal(weft_stop_parse(" sigusr2 , 2", sig, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sig[0], SIGUSR2);
    assert_int_equal(sig[1], 2);
    assert_int_equal(weft_stop_parse("", sig, 8, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(weft_stop_parse("USR1,KILL", sig, 8, &n), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "sched.signals: 'KILL' cannot be caught"));
    assert_int_equal(weft_stop_parse("SIGSTOP", sig, 8, &n), WEFT_ECONFIG);
    assert_int_equal(weft_stop_parse("FOO", sig, 8, &n), WEFT_ECONFIG);
    assert_non_null(strstr(weft_last_error(), "unknown signal 'FOO'"));
    assert_int_equal(weft_stop_parse("0", sig, 8, &n), WEFT_ECONFIG);
    assert_int_equal(weft_stop_parse("100000", sig, 8, &n), WEFT_ECONFIG);
    assert_int_equal(weft_stop_parse("USR1,USR2,TERM", sig, 2, &n), WEFT_ECONFIG);
    assert_string_equal(weft_signal_name(SIGTERM), "SIGTERM");
}

static void test_stop_flag(void **state)
{
    (void)state;
    assert_int_equal(weft_stop_install("USR2"), 0);
    assert_true(weft_stop_installed());
    assert_int_equal(weft_stop_requested(), 0);
    raise(SIGUSR2); /* the process lives on: the handler only sets the flag */
    assert_int_equal(weft_stop_requested(), SIGUSR2);
    weft_stop_request(SIGTERM); /* the first request stays */
    assert_int_equal(weft_stop_requested(), SIGUSR2);
    weft_stop_uninstall();
    assert_false(weft_stop_installed());
}

static void sample(weft_report *r)
{
    weft_report_init(r, "81\"7\\23");
    r->state = WEFT_RUN_RUNNING;
    r->step = 50;
    r->total_steps = 100;
    r->loss = 2.3125;
    r->tokens_per_s = 5120;
    r->eta_s = 100;
    r->step_s = 0.5;
    r->compute_s = 0.25;
    r->tokens = 12800;
    r->ckpt_step = 40;
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "runs/a/step-40.h5");
    r->ckpt_time = 1000;
    r->started = 900;
    r->heartbeat = 1010;
}

static void test_json(void **state)
{
    (void)state;
    weft_report r;
    char buf[4096];
    weft_report_init(&r, "job\n1");
    int n = weft_report_json(&r, 10, buf, sizeof buf);
    assert_int_equal((int)strlen(buf), n);
    assert_non_null(strstr(buf, "\"job_id\":\"job\\u000a1\""));
    assert_non_null(strstr(buf, "\"state\":\"starting\""));
    assert_non_null(strstr(buf, "\"loss\":null"));          /* NaN is not JSON */
    assert_non_null(strstr(buf, "\"tokens_per_s\":null"));
    assert_non_null(strstr(buf, "\"last_checkpoint\":null"));
    assert_int_equal(buf[n - 1], '\n');
    sample(&r);
    weft_report_json(&r, 1020, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"job_id\":\"81\\\"7\\\\23\""));
    assert_non_null(strstr(buf, "\"step\":50,\"total_steps\":100,\"loss\":2.3125"));
    assert_non_null(strstr(buf, "\"last_checkpoint\":{\"step\":40,\"path\":\"runs/a/step-40.h5\",\"time\":1000.000}"));
    assert_non_null(strstr(buf, "\"elapsed_s\":120"));
    /* A buffer too small truncates, never overruns. */
    char small[32];
    memset(small, 'x', sizeof small);
    assert_true(weft_report_json(&r, 1020, small, 16) < 16);
    assert_int_equal(small[16], 'x');
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_prometheus(void **state)
{
    (void)state;
    weft_report r;
    char buf[16384];
    sample(&r);
    weft_report_prometheus(&r, 1030, buf, sizeof buf);
    assert_int_equal(count(buf, "# HELP "), count(buf, "# TYPE "));
    assert_non_null(strstr(buf, "# TYPE weft_tokens_total counter\n"));
    /* Label values escape quotes and backslashes. */
    assert_non_null(strstr(buf, "weft_step{job_id=\"81\\\"7\\\\23\"} 50\n"));
    assert_non_null(strstr(buf, "weft_loss{job_id=\"81\\\"7\\\\23\"} 2.3125\n"));
    assert_non_null(strstr(buf, "weft_checkpoint_age_seconds{job_id=\"81\\\"7\\\\23\"} 30\n"));
    assert_non_null(strstr(buf, "phase=\"compute\"} 0.25\n"));
    assert_non_null(strstr(buf, "weft_state{job_id=\"81\\\"7\\\\23\",state=\"running\"} 1\n"));
    assert_non_null(strstr(buf, "weft_state{job_id=\"81\\\"7\\\\23\",state=\"done\"} 0\n"));
    weft_report_init(&r, "j");
    weft_report_prometheus(&r, 1030, buf, sizeof buf);
    assert_non_null(strstr(buf, "weft_loss{job_id=\"j\"} NaN\n"));
    assert_non_null(strstr(buf, "weft_checkpoint_age_seconds{job_id=\"j\"} NaN\n"));
    assert_non_null(strstr(buf, "weft_checkpoint_step{job_id=\"j\"} -1\n"));
}

/* Two checkpoint tiers: the drain in status.json and the metrics; absent
 * with one tier. */
static void test_drain(void **state)
{
    (void)state;
    weft_report r;
    char buf[16384];
    sample(&r);
    weft_report_json(&r, 1020, buf, sizeof buf);
    assert_null(strstr(buf, "shared_tier"));
    weft_report_prometheus(&r, 1030, buf, sizeof buf);
    assert_null(strstr(buf, "weft_checkpoint_drain"));
    r.tiered = 1;
    r.drained_step = 30;
    r.drains = 3, r.drain_retries = 2, r.drain_failures = 1;
    snprintf(r.drain_error, sizeof r.drain_error, "step 40: \"/shared\": No space left on device");
    weft_report_json(&r, 1020, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"shared_tier\":{\"drained_step\":30,\"drained\":3,\"retried\":2,\"failed\":1,"
                                "\"error\":\"step 40: \\\"/shared\\\": No space left on device\"}"));
    weft_report_prometheus(&r, 1030, buf, sizeof buf);
    assert_int_equal(count(buf, "# HELP "), count(buf, "# TYPE "));
    assert_non_null(strstr(buf, "# TYPE weft_checkpoint_drain_failures_total counter\n"));
    assert_non_null(strstr(buf, "weft_checkpoint_drained_step{job_id=\"81\\\"7\\\\23\"} 30\n"));
    assert_non_null(strstr(buf, "weft_checkpoint_drains_total{job_id=\"81\\\"7\\\\23\"} 3\n"));
    assert_non_null(strstr(buf, "weft_checkpoint_drain_retries_total{job_id=\"81\\\"7\\\\23\"} 2\n"));
    assert_non_null(strstr(buf, "weft_checkpoint_drain_failures_total{job_id=\"81\\\"7\\\\23\"} 1\n"));
}

static void test_comment(void **state)
{
    (void)state;
    weft_report r;
    char buf[256];
    sample(&r);
    weft_report_comment(&r, buf, sizeof buf);
    assert_string_equal(buf, "weft running step 50/100 loss 2.312 5.1k tok/s ETA 1m40s ckpt 40");
    weft_report_init(&r, "j");
    weft_report_comment(&r, buf, sizeof buf);
    assert_string_equal(buf, "weft starting step 0/0 loss ? ? tok/s ETA ? ckpt none");
}

/* The memory account: absent until known; then status.json's "memory"
 * and Prometheus' weft_memory_* carry the same numbers. */
static void test_memory(void **state)
{
    (void)state;
    weft_report r;
    char buf[16384];
    sample(&r);
    weft_report_json(&r, 1020, buf, sizeof buf);
    assert_null(strstr(buf, "\"memory\""));
    weft_report_prometheus(&r, 1030, buf, sizeof buf);
    assert_null(strstr(buf, "weft_memory"));
    r.mem = (weft_report_memory){.known = 1, .rank = 3, .bytes = {1, 2, 3, 4, 5, 6, 7}, .planned = 28,
                                 .peak_rss = 30, .peak_rank = 1};
    weft_report_json(&r, 1020, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"memory\":{\"rank\":3,\"params_bytes\":1,\"grads_bytes\":2,\"optimizer_bytes\":3,"
                                "\"activations_bytes\":4,\"comm_bytes\":5,\"checkpoint_bytes\":6,\"runtime_bytes\":7,"
                                "\"planned_bytes\":28,\"peak_rss_bytes\":30,\"peak_rss_rank\":1}"));
    weft_report_prometheus(&r, 1030, buf, sizeof buf);
    assert_int_equal(count(buf, "# HELP "), count(buf, "# TYPE "));
    assert_non_null(strstr(buf, "weft_memory_bytes{job_id=\"81\\\"7\\\\23\",rank=\"3\",category=\"activations\"} 4\n"));
    assert_non_null(strstr(buf, "weft_memory_peak_rss_bytes{job_id=\"81\\\"7\\\\23\"} 30\n"));
    r.mem.peak_rss = NAN; /* not measured yet: null, NaN */
    weft_report_json(&r, 1020, buf, sizeof buf);
    assert_non_null(strstr(buf, "\"peak_rss_bytes\":null"));
    weft_report_prometheus(&r, 1030, buf, sizeof buf);
    assert_non_null(strstr(buf, "weft_memory_peak_rss_bytes{job_id=\"81\\\"7\\\\23\"} NaN\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_parse), cmocka_unit_test(test_stop_flag), cmocka_unit_test(test_json),
        cmocka_unit_test(test_prometheus), cmocka_unit_test(test_drain), cmocka_unit_test(test_memory),
        cmocka_unit_test(test_comment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
