/*
 * bpe.c -- encoding and decoding with a weft_tokenizer (tokenizer.h); the
 * files are read by bpe_load.c.
 *
 * Encoding a text: (1) cut out the added tokens ("<|endoftext|>", leftmost,
 * longest first), (2) split each stretch between them with the
 * pre-tokenizer (data/pretok.c), (3) turn each piece into the ids of its
 * bytes and merge adjacent pairs, the lowest rank first and the leftmost of
 * equal ranks, until no pair has a merge -- the rule of the Hugging Face
 * tokenizers library and of GPT-2's encoder.py. With ignore_merges (Llama 3)
 * a piece that is itself a token is that token.
 *
 * Step (3) rescans the pairs after each merge for short pieces (a few
 * hundred nanoseconds for a word) and uses a binary heap over a linked list
 * for long ones (runs of spaces or punctuation), so no input is quadratic.
 * Each thread keeps a direct-mapped cache of recent pieces and their ids:
 * text repeats its words, and a hit costs a hash and a compare.
 */
#include "data/bpe_internal.h"
#include "runtime/error.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

size_t weft_bpe_heap_from = 64;

/* ---- lookups ----------------------------------------------------------- */

uint32_t weft_bpe_bytes_lookup(const weft_tokenizer *t, const uint8_t *s, size_t n)
{
    for (size_t i = XXH3_64bits(s, n) & t->bytes_mask;; i = (i + 1) & t->bytes_mask) {
        uint32_t id = t->bytes_map[i];
        if (id == NO_ID)
            return NO_ID;
        if (t->tok_len[id] == n && memcmp(t->pool + t->tok_off[id], s, n) == 0)
            return id;
    }
}

static inline size_t merge_hash(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 29) & mask;
}

const merge_slot *weft_bpe_merge_lookup(const weft_tokenizer *t, uint32_t a, uint32_t b)
{
    uint64_t key = (uint64_t)a << 32 | b;
    for (size_t i = merge_hash(key, t->merge_mask);; i = (i + 1) & t->merge_mask) {
        const merge_slot *m = &t->merges[i];
        if (m->key == key)
            return m;
        if (m->key == UINT64_MAX)
            return NULL;
    }
}

static inline uint32_t pair_rank(const weft_tokenizer *t, uint32_t a, uint32_t b, uint32_t *id)
{
    const merge_slot *m = t->nmerges ? weft_bpe_merge_lookup(t, a, b) : NULL;
    *id = NO_ID;
    if (!m)
        return UINT32_MAX;
    *id = m->id;
    return m->rank;
}

/* ---- per-thread state: the word cache and scratch for long pieces -------- */

#define CACHE_SLOTS (1u << 15)
#define CACHE_KEY 22
#define CACHE_IDS 9

typedef struct {
    uint32_t hash;
    uint8_t len, nids;
    uint8_t key[CACHE_KEY];
    uint32_t ids[CACHE_IDS];
} cache_slot; /* 64 bytes: one cache line */

typedef struct {
    cache_slot slots[CACHE_SLOTS];
    uint32_t *sym;       /* (cap) ids of the piece being merged */
    size_t *prev, *next; /* (cap) its linked list (heap loop) */
    uint64_t *heap;      /* (3 cap) rank << 32 | index (heap loop) */
    size_t cap;
} thread_state;

static void state_free(void *p)
{
    thread_state *s = p;
    if (!s)
        return;
    free(s->sym);
    free(s->prev);
    free(s->next);
    free(s->heap);
    free(s);
}

static thread_state *state_get(const weft_tokenizer *t)
{
    thread_state *s = pthread_getspecific(t->cache_key);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (pthread_setspecific(t->cache_key, s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static int state_reserve(thread_state *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    size_t cap = n < 256 ? 256 : n + n / 2;
    if (cap > (SIZE_MAX / 3) / sizeof(uint64_t))
        return weft_error(WEFT_ENOMEM, "a piece of %zu bytes is too long to merge", n);
    uint32_t *sym = realloc(s->sym, cap * sizeof *sym);
    if (sym)
        s->sym = sym;
    size_t *prev = realloc(s->prev, cap * sizeof *prev);
    if (prev)
        s->prev = prev;
    size_t *next = realloc(s->next, cap * sizeof *next);
    if (next)
        s->next = next;
    uint64_t *heap = realloc(s->heap, 3 * cap * sizeof *heap);
    if (heap)
        s->heap = heap;
    if (!sym || !prev || !next || !heap)
        return weft_error(WEFT_ENOMEM, "no memory to merge a piece of %zu bytes", n);
    s->cap = cap;
    return 0;
}

/* ---- output ------------------------------------------------------------- */

typedef struct {
    uint32_t *out;
    size_t cap, n;
} sink;

static inline void put(sink *o, uint32_t id)
{
    if (o->n < o->cap)
        o->out[o->n] = id;
    o->n++;
}

/* ---- merging ------------------------------------------------------------ */

/* Short pieces: ranks of adjacent pairs in an array, rescanned per merge. */
static size_t merge_scan(const weft_tokenizer *t, uint32_t *sym, size_t m)
{
    uint32_t rank[CACHE_KEY * 4], nid[CACHE_KEY * 4];
    uint32_t *rk = rank, *ni = nid, *heap_rk = NULL;
    if (m > sizeof rank / sizeof rank[0]) {
        heap_rk = malloc(2 * m * sizeof *heap_rk);
        if (!heap_rk)
            return SIZE_MAX;
        rk = heap_rk;
        ni = heap_rk + m;
    }
    for (size_t i = 0; i + 1 < m; i++)
        rk[i] = pair_rank(t, sym[i], sym[i + 1], &ni[i]);
    while (m > 1) {
        size_t bi = SIZE_MAX;
        uint32_t best = UINT32_MAX;
        for (size_t i = 0; i + 1 < m; i++)
            if (rk[i] < best)
                best = rk[i], bi = i;
        if (bi == SIZE_MAX)
            break;
        sym[bi] = ni[bi];
        m--;
        memmove(sym + bi + 1, sym + bi + 2, (m - bi - 1) * sizeof *sym);
        memmove(rk + bi + 1, rk + bi + 2, (m - bi - 1) * sizeof *rk);
        memmove(ni + bi + 1, ni + bi + 2, (m - bi - 1) * sizeof *ni);
        if (bi + 1 < m)
            rk[bi] = pair_rank(t, sym[bi], sym[bi + 1], &ni[bi]);
        else
            rk[bi] = UINT32_MAX;
        if (bi > 0)
            rk[bi - 1] = pair_rank(t, sym[bi - 1], sym[bi], &ni[bi - 1]);
    }
    free(heap_rk);
    return m;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1] < h[c])
            c++;
        if (h[c] >= v)
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
    return top;
}

#define NONE SIZE_MAX

static void push_pair(const weft_tokenizer *t, thread_state *s, size_t *hn, size_t i)
{
    uint32_t id;
    if (i == NONE || s->next[i] == NONE)
        return;
    uint32_t r = pair_rank(t, s->sym[i], s->sym[s->next[i]], &id);
    if (r != UINT32_MAX)
        heap_push(s->heap, hn, (uint64_t)r << 32 | i);
}

/* Long pieces: a heap of (rank, position) over a linked list of symbols.
 * Entries whose pair has changed since they were pushed are skipped when
 * popped. Positions are below 2^32 (checked by the caller). */
static size_t merge_heap(const weft_tokenizer *t, thread_state *s, size_t m)
{
    size_t hn = 0;
    for (size_t i = 0; i < m; i++) {
        s->prev[i] = i ? i - 1 : NONE;
        s->next[i] = i + 1 < m ? i + 1 : NONE;
    }
    for (size_t i = 0; i + 1 < m; i++)
        push_pair(t, s, &hn, i);
    while (hn) {
        uint64_t top = heap_pop(s->heap, &hn);
        size_t i = (size_t)(top & 0xFFFFFFFFu), j;
        uint32_t id = NO_ID;
        if (s->sym[i] == NO_ID || (j = s->next[i]) == NONE ||
            pair_rank(t, s->sym[i], s->sym[j], &id) != (uint32_t)(top >> 32))
            continue; /* stale: a neighbour merged since */
        s->sym[i] = id;
        s->sym[j] = NO_ID;
        s->next[i] = s->next[j];
        if (s->next[j] != NONE)
            s->prev[s->next[j]] = i;
        push_pair(t, s, &hn, s->prev[i]);
        push_pair(t, s, &hn, i);
    }
    size_t k = 0;
    for (size_t i = 0; i != NONE; i = s->next[i])
        s->sym[k++] = s->sym[i];
    return k;
}

/* The ids of one piece into o (through the cache). */
static int encode_piece(const weft_tokenizer *t, thread_state *st, const uint8_t *p, size_t len, sink *o)
{
    cache_slot *slot = NULL;
    uint32_t h = 0;
    if (len <= CACHE_KEY) {
        h = (uint32_t)XXH3_64bits(p, len);
        slot = &st->slots[h & (CACHE_SLOTS - 1)];
        if (slot->hash == h && slot->len == len && slot->nids && memcmp(slot->key, p, len) == 0) {
            for (int i = 0; i < slot->nids; i++)
                put(o, slot->ids[i]);
            return 0;
        }
    }
    size_t m;
    uint32_t *sym;
    uint32_t local[CACHE_KEY];
    uint32_t whole = t->ignore_merges ? weft_bpe_bytes_lookup(t, p, len) : NO_ID;
    if (whole != NO_ID) {
        sym = local;
        sym[0] = whole;
        m = 1;
    } else {
        if (len <= CACHE_KEY) {
            sym = local;
        } else {
            if (len > UINT32_MAX)
                return weft_error(WEFT_EINVAL, "a piece of %zu bytes: expected under 4 GiB", len);
            WEFT_CHECK(state_reserve(st, len));
            sym = st->sym;
        }
        for (size_t i = 0; i < len; i++)
            sym[i] = t->byte_id[p[i]];
        if (len > weft_bpe_heap_from) {
            WEFT_CHECK(state_reserve(st, len));
            if (sym != st->sym)
                memcpy(st->sym, sym, len * sizeof *sym);
            sym = st->sym;
            m = merge_heap(t, st, len);
        } else {
            m = merge_scan(t, sym, len);
            if (m == SIZE_MAX)
                return weft_error(WEFT_ENOMEM, "no memory to merge a piece of %zu bytes", len);
        }
    }
    for (size_t i = 0; i < m; i++)
        put(o, sym[i]);
    if (slot && m <= CACHE_IDS) {
        slot->hash = h;
        slot->len = (uint8_t)len;
        slot->nids = (uint8_t)m;
        memcpy(slot->key, p, len);
        memcpy(slot->ids, sym, m * sizeof *sym);
    }
    return 0;
}

/* ---- added tokens --------------------------------------------------------- */

/* The leftmost, then longest, added token in s[from..n): its start, or n. */
static size_t find_added(const weft_tokenizer *t, const uint8_t *s, size_t from, size_t n, const added_token **hit)
{
    for (size_t i = from; i < n; i++) {
        if (!t->added_first[s[i]])
            continue;
        for (size_t k = 0; k < t->nadded; k++) { /* sorted longest first */
            const added_token *a = &t->added[k];
            if (a->len <= n - i && memcmp(t->pool + a->off, s + i, a->len) == 0) {
                *hit = a;
                return i;
            }
        }
    }
    return n;
}

typedef int (*piece_fn)(const weft_tokenizer *t, void *arg, const uint8_t *s, size_t len, int added_id);

/* Walk text as the encoder does: each pre-token, or added token, in order. */
static int walk(const weft_tokenizer *t, const uint8_t *s, size_t n, piece_fn fn, void *arg)
{
    size_t pos = 0;
    while (pos < n) {
        const added_token *a = NULL;
        size_t end = t->nadded ? find_added(t, s, pos, n, &a) : n;
        while (pos < end) {
            size_t len = weft_pretok_next(t->pretok, s + pos, end - pos);
            WEFT_CHECK(fn(t, arg, s + pos, len, -1));
            pos += len;
        }
        if (a) {
            WEFT_CHECK(fn(t, arg, s + pos, a->len, (int)a->id));
            pos += a->len;
        }
    }
    return 0;
}

typedef struct {
    thread_state *st;
    sink *o;
} encode_arg;

static int encode_one(const weft_tokenizer *t, void *arg, const uint8_t *s, size_t len, int added_id)
{
    encode_arg *e = arg;
    if (added_id >= 0) {
        put(e->o, (uint32_t)added_id);
        return 0;
    }
    return encode_piece(t, e->st, s, len, e->o);
}

int weft_tokenizer_encode(const weft_tokenizer *t, const char *text, size_t n, uint32_t *out, size_t cap,
                          size_t *nout)
{
    sink o = {out, cap, 0};
    const uint8_t *s = (const uint8_t *)text;
    if (t->kind == KIND_BYTES) {
        for (size_t i = 0; i < n; i++)
            if (s[i] != WEFT_BYTES_EOD)
                put(&o, s[i]);
    } else {
        thread_state *st = state_get(t);
        if (!st)
            return weft_error(WEFT_ENOMEM, "no memory for the tokenizer's word cache");
        encode_arg e = {st, &o};
        WEFT_CHECK(walk(t, s, n, encode_one, &e));
    }
    *nout = o.n;
    if (o.n > cap)
        return weft_error(WEFT_EINVAL, "encoding %zu bytes of text needs room for %zu ids, given %zu", n, o.n, cap);
    return 0;
}

typedef struct {
    void (*fn)(void *, const char *, size_t, int);
    void *arg;
} split_arg;

static int split_one(const weft_tokenizer *t, void *arg, const uint8_t *s, size_t len, int added_id)
{
    (void)t;
    split_arg *a = arg;
    a->fn(a->arg, (const char *)s, len, added_id >= 0);
    return 0;
}

int weft_tokenizer_split(const weft_tokenizer *t, const char *text, size_t n,
                         void (*fn)(void *arg, const char *s, size_t len, int added), void *arg)
{
    split_arg a = {fn, arg};
    if (t->kind != KIND_BPE)
        return weft_error(WEFT_EINVAL, "the byte-level tokenizer has no pre-tokenizer");
    return walk(t, (const uint8_t *)text, n, split_one, &a);
}

int weft_tokenizer_added_has(const weft_tokenizer *t, char c)
{
    for (size_t k = 0; k < t->nadded; k++)
        if (memchr(t->pool + t->added[k].off, c, t->added[k].len))
            return 1;
    return 0;
}

/* ---- decoding and the accessors ------------------------------------------ */

int weft_tokenizer_decode(const weft_tokenizer *t, const uint32_t *ids, size_t n, char *out, size_t cap,
                          size_t *nout)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        if (id >= t->vocab || !(t->tok_flags[id] & TOK_PRESENT))
            return weft_error(WEFT_EDATA, "id %u (at position %zu) is not a token of %s (vocabulary %u)", id, i,
                              t->origin, t->vocab);
        size_t len = t->tok_len[id];
        if (len && k + len <= cap)
            memcpy(out + k, t->pool + t->tok_off[id], len);
        k += len;
    }
    *nout = k;
    if (k > cap)
        return weft_error(WEFT_EINVAL, "decoding %zu ids needs room for %zu bytes, given %zu", n, k, cap);
    return 0;
}

int weft_tokenizer_vocab(const weft_tokenizer *t) { return (int)t->vocab; }
uint64_t weft_tokenizer_hash(const weft_tokenizer *t) { return t->hash; }
int32_t weft_tokenizer_eot(const weft_tokenizer *t) { return t->eot; }
uint32_t weft_tokenizer_id(const weft_tokenizer *t) { return t->kind == KIND_BYTES ? 1u : 2u; }

const char *weft_tokenizer_name(const weft_tokenizer *t)
{
    if (t->kind == KIND_BYTES)
        return "bytes";
    return t->pretok == WEFT_PRETOK_LLAMA3 ? "bpe/llama3" : "bpe/gpt2";
}

void weft_tokenizer_free(weft_tokenizer *t)
{
    if (!t)
        return;
    if (t->has_key) {
        /* Other threads' caches were freed when they exited (the key's
         * destructor); this thread's is freed here. */
        state_free(pthread_getspecific(t->cache_key));
        pthread_key_delete(t->cache_key);
    }
    free(t->tok_off);
    free(t->tok_len);
    free(t->tok_flags);
    free(t->pool);
    free(t->bytes_map);
    free(t->merges);
    free(t->merge_order);
    free(t->added);
    free(t);
}

int weft_bpe_key_create(weft_tokenizer *t)
{
    if (pthread_key_create(&t->cache_key, state_free) != 0)
        return weft_error(WEFT_ENOMEM, "no thread key for the tokenizer's cache");
    t->has_key = 1;
    return 0;
}
