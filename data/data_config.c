/*
 * data_config.c -- the [data] configuration keys and the helper that turns a
 * resolved configuration into loader options. Kept apart from loader.c so a
 * program that uses the loader without a configuration does not pull in the
 * config module.
 */
#include "data/loader.h"
#include "runtime/config.h"
#include "runtime/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const weft_config_key weft_data_config_keys[] = {
    {"data.path", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "dataset directories made by weft-data, comma-separated to blend several"},
    {"data.weights", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "blend weights, one per data.path entry, comma-separated (empty: equal)"},
    {"data.split", WEFT_CFG_ENUM, "train", WEFT_UNBOUNDED, "train|val",
     "which shards of each dataset to read"},
    {"data.shuffle", WEFT_CFG_BOOL, "true", WEFT_UNBOUNDED, NULL,
     "shuffle samples each epoch (deterministic from the seed)"},
    {"data.prefetch_depth", WEFT_CFG_INT, "4", 1, 1024, NULL,
     "batches read ahead of the training step"},
    {"data.io_threads", WEFT_CFG_INT, "4", 1, 256, NULL,
     "threads reading shard windows in parallel (reads in flight on a cold cache)"},
    {"data.direct_io", WEFT_CFG_BOOL, "false", WEFT_UNBOUNDED, NULL,
     "read shards with O_DIRECT, bypassing the page cache (falls back if refused)"},
    {"data.max_open_shards", WEFT_CFG_INT, "64", 1, 65536, NULL,
     "shard files kept open at once by the loader"},
    {"data.tokenizer", WEFT_CFG_STRING, "", WEFT_UNBOUNDED, NULL,
     "the model's tokenizer: a tokenizer.json, a directory holding one or vocab.json + merges.txt, or 'bytes'; "
     "a dataset whose manifest records another tokenizer's hash is refused (exit 65), and the vocabulary is at "
     "least the tokenizer's (empty: not checked)"},
    WEFT_CONFIG_END,
};

/* Split the comma list in text (copied into o->storage) into o->paths. */
static int split_paths(weft_loader_options *o, const char *text)
{
    size_t len = strlen(text);
    if (len == 0)
        return weft_error(WEFT_ECONFIG, "data.path is empty: expected one or more dataset directories, comma-separated");
    if (len >= sizeof o->storage)
        return weft_error(WEFT_ECONFIG, "data.path is %zu bytes long: expected at most %zu", len, sizeof o->storage - 1);
    memcpy(o->storage, text, len + 1);
    o->n_datasets = 0;
    for (char *save = NULL, *p = strtok_r(o->storage, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ')
            p++;
        if (o->n_datasets == WEFT_BLEND_MAX)
            return weft_error(WEFT_ECONFIG, "data.path lists more than %d datasets", WEFT_BLEND_MAX);
        o->paths[o->n_datasets++] = p;
    }
    if (o->n_datasets == 0)
        return weft_error(WEFT_ECONFIG, "data.path \"%s\": expected one or more dataset directories", text);
    return 0;
}

static int parse_weights(weft_loader_options *o, const char *text)
{
    int n = 0;
    const char *p = text;
    memset(o->weights, 0, sizeof o->weights);
    if (!*text)
        return 0;
    while (*p) {
        char *end;
        double w = strtod(p, &end);
        if (end == p || !isfinite(w) || w <= 0 || n == WEFT_BLEND_MAX)
            return weft_error(WEFT_ECONFIG, "data.weights \"%s\": expected up to %d positive numbers, comma-separated",
                              text, WEFT_BLEND_MAX);
        o->weights[n++] = w;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        else if (*p)
            return weft_error(WEFT_ECONFIG, "data.weights \"%s\": unexpected \"%s\"", text, p);
    }
    if (n != o->n_datasets)
        return weft_error(WEFT_ECONFIG, "data.weights has %d weights for %d datasets in data.path: expected one per dataset",
                          n, o->n_datasets);
    return 0;
}

int weft_loader_options_from_config(const weft_config *cfg, weft_loader_options *o)
{
    WEFT_CHECK(split_paths(o, weft_config_str(cfg, "data.path")));
    WEFT_CHECK(parse_weights(o, weft_config_str(cfg, "data.weights")));
    WEFT_CHECK(weft_split_parse(weft_config_str(cfg, "data.split"), &o->split) == 0
                   ? 0 : weft_error(WEFT_ECONFIG, "data.split: expected train or val"));
    o->shuffle = weft_config_bool(cfg, "data.shuffle");
    o->prefetch_depth = (int)weft_config_int(cfg, "data.prefetch_depth");
    o->io_threads = (int)weft_config_int(cfg, "data.io_threads");
    o->direct_io = weft_config_bool(cfg, "data.direct_io");
    o->max_open_shards = (int)weft_config_int(cfg, "data.max_open_shards");
    return 0;
}
