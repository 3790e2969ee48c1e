/*
 * test_check.c -- the whole-configuration rules of train/check.c: each rule
 * refuses what it should with WEFT_ECONFIG and a message naming every key
 * and value involved, accepts the boundary, and is skipped when the program
 * does not declare its keys (a model without model.* keys) or the
 * vocabulary is not known.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "model/lm.h"
#include "runtime/ctx.h"
#include "runtime/error.h"
#include "train/trainer.h"

static const weft_config_key *const gpt_tables[] = {weft_runtime_config_keys, weft_model_config_keys,
                                                    WEFT_TRAINER_CONFIG_KEYS, NULL};
static const weft_config_key *const plain_tables[] = {weft_runtime_config_keys, WEFT_TRAINER_CONFIG_KEYS, NULL};

/* A configuration of tables with the INI text applied. */
static weft_config *cfg_of(const weft_config_key *const *tables, const char *ini)
{
    weft_config *c = NULL;
    assert_int_equal(weft_config_new(tables, &c), 0);
    assert_int_equal(weft_config_parse_string(c, ini, strlen(ini), "job.ini"), 0);
    return c;
}

static void has(const char *needle)
{
    if (!strstr(weft_last_error(), needle)) {
        print_error("message \"%s\"\n  does not contain \"%s\"\n", weft_last_error(), needle);
        fail();
    }
}

/* Expects the check of ini on world ranks (vocab, whole_model) to fail
 * naming each of the NULL-terminated needles. */
static void fails(const char *ini, int world, int vocab, const char *whole, const char *const *needles)
{
    weft_config *c = cfg_of(gpt_tables, ini);
    weft_trainer_check_in in = {.world = world, .vocab = vocab, .whole_model = whole};
    weft_error_clear();
    assert_int_equal(weft_trainer_check(c, &in), WEFT_ECONFIG);
    for (int i = 0; needles[i]; i++)
        has(needles[i]);
    weft_config_free(c);
}

static void passes(const weft_config_key *const *tables, const char *ini, int world, int vocab, const char *whole)
{
    weft_config *c = cfg_of(tables, ini);
    weft_trainer_check_in in = {.world = world, .vocab = vocab, .whole_model = whole};
    int rc = weft_trainer_check(c, &in);
    if (rc)
        print_error("%s\n", weft_last_error());
    assert_int_equal(rc, 0);
    weft_config_free(c);
}

static void test_defaults_pass(void **state)
{
    (void)state;
    passes(gpt_tables, "", 1, 256, NULL);
    passes(gpt_tables, "", 2, 0, NULL);
    passes(plain_tables, "", 1, 0, NULL);
}

static void test_min_lr(void **state)
{
    (void)state;
    fails("[optim]\nlr = 1e-4\nmin_lr = 2e-4\n", 1, 256, NULL,
          (const char *[]){"optim.min_lr (0.0002, job.ini:3)", "optim.lr (0.0001, job.ini:2)", NULL});
    passes(gpt_tables, "[optim]\nlr = 1e-4\nmin_lr = 1e-4\n", 1, 256, NULL);
    passes(gpt_tables, "[optim]\nwarmup = 500\n[train]\nsteps = 10\n", 1, 256, NULL); /* a warning only */
}

static void test_layout_and_batch(void **state)
{
    (void)state;
    fails("[parallel]\ndp = 2\ntp = 2\n", 2, 256, NULL,
          (const char *[]){"parallel.dp (2)", "parallel.tp (2)", "parallel.pp (1)", "world size 2", NULL});
    fails("[train]\nglobal_batch = 24\nmicro_batch = 8\n", 2, 256, NULL,
          (const char *[]){"train.global_batch (24)", "train.micro_batch (8)", "data-parallel size (2",
                           "parallel.tp = 1", NULL});
    passes(gpt_tables, "[train]\nglobal_batch = 32\nmicro_batch = 8\n", 2, 256, NULL);
    /* A model of one's own: the batch rule applies, the model rules do not. */
    passes(plain_tables, "[train]\nseq_len = 4096\n", 1, 0, NULL);
}

static void test_model_shape(void **state)
{
    (void)state;
    fails("[train]\nseq_len = 512\n[model]\ncontext = 256\n", 1, 256, NULL,
          (const char *[]){"train.seq_len (512)", "model.context (256)", NULL});
    fails("[model]\nn_head = 3\nn_embd = 96\n[parallel]\ntp = 2\n", 2, 256, NULL,
          (const char *[]){"parallel.tp (2)", "model.n_head (3)", NULL});
    fails("[model]\nn_layer = 3\n[parallel]\npp = 2\n", 2, 256, NULL,
          (const char *[]){"parallel.pp (2)", "model.n_layer (3)", NULL});
    fails("[parallel]\ntp = 2\n", 2, 257, NULL, (const char *[]){"parallel.tp (2)", "257", NULL});
    passes(gpt_tables, "[parallel]\ntp = 2\n", 2, 0, NULL); /* vocabulary unknown: its rule waits */
}

static void test_whole_model(void **state)
{
    (void)state;
    fails("[parallel]\ntp = 2\n", 2, 256, "--sample",
          (const char *[]){"--sample", "parallel.tp = 2", "parallel.pp = 1", NULL});
    fails("[parallel]\npp = 2\n", 2, 256, "--sample", (const char *[]){"--sample", "parallel.pp = 2", NULL});
    passes(gpt_tables, "[parallel]\ntp = 2\n", 2, 256, NULL);
    passes(gpt_tables, "", 2, 256, "--sample");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_pass),    cmocka_unit_test(test_min_lr),
        cmocka_unit_test(test_layout_and_batch), cmocka_unit_test(test_model_shape),
        cmocka_unit_test(test_whole_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
