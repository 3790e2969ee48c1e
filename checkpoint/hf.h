/*
 * hf.h -- Hugging Face models in and out of weft checkpoints (weft-ckpt
 * import and export; docs/checkpoint-format.md, "Hugging Face models").
 *
 * The one place in checkpoint/ that knows model families: the mapping
 * between a family's weft parameters and Hugging Face's tensors (GPT-2:
 * "transformer." prefix, Conv1D weights stored (in, out); Llama: the same
 * names and layouts), and between config.json and the model.* keys. The
 * files themselves are checkpoint/safetensors.h and checkpoint/single.h.
 *
 * Import builds the whole model the config describes (model/lm.h), so the
 * checkpoint holds exactly the tensors, names, shapes and order weft-train
 * builds from the same model.* keys, stored in the file's config attribute.
 *
 * Callers hold weft_h5_lock (checkpoint/h5.h).
 */
#ifndef WEFT_CHECKPOINT_HF_H
#define WEFT_CHECKPOINT_HF_H

#include <stddef.h>

typedef struct weft_hf_import_info {
    char family[16];             /* "gpt2" or "llama" */
    char arch[64];               /* what config.json named */
    int ntensors;                /* written to the checkpoint */
    int nfiles;                  /* safetensors files read */
    char dtypes[32];             /* the input dtypes seen: "F32", "BF16,F32", ... */
    char model_args[1024];       /* "--model.family=llama --model.n_layer=2 ..." for weft-train */
    int vocab;
} weft_hf_import_info;

/* src: a model directory (config.json + model.safetensors, or
 * model.safetensors.index.json and its shards), a .safetensors file or a
 * model.safetensors.index.json file; config: config.json's path (NULL: the
 * one in the directory, or beside the index; a lone .safetensors file needs
 * it: WEFT_EINVAL). Writes the checkpoint out (temporary name,
 * renamed). Errors: WEFT_ENOENT a missing file, WEFT_EDATA anything wrong
 * inside one (naming the file, tensor and field), WEFT_EIO. */
int weft_hf_import(const char *src, const char *config, const char *out, weft_hf_import_info *info);

/* The weights of checkpoint path as Hugging Face names and layouts:
 * format "safetensors" writes one file out; "hf" a directory out holding
 * config.json, model.safetensors and the tokenizer's files (built as
 * out.tmp.PID and renamed; out must not exist). The tokenizer is tokenizer
 * (a tokenizer.json, or a directory holding one or vocab.json + merges.txt
 * or encoder.json + vocab.bpe), or when NULL the data.tokenizer the run
 * used; none for 'bytes'. *ntensors: how many tensors were written. */
int weft_hf_export(const char *path, const char *format, const char *out, const char *tokenizer, int *ntensors,
                   char *family, size_t len);

#endif
