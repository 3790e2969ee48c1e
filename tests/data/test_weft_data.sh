#!/bin/bash
# test_weft_data.sh -- weft-data end to end: prepare, import, verify and info
# on good data, then every kind of damage (flipped bytes, truncation, missing
# shards, bad manifests, out-of-range tokens) with the documented exit codes
# (64 usage, 65 bad data, 66 missing input, 74 I/O) and messages that name
# the file.
. "$(dirname "$0")/../lib.sh"
WD="$WEFT_BIN/weft-data"
T=$TMPDIR_TEST
cd "$T" || exit 1

# ---- usage --------------------------------------------------------------------
check "--help" "$WD" --help
for c in prepare import verify info; do
    check "$c --help" "$WD" $c --help
done
expect_exit 64 "no command" "$WD"
expect_exit 64 "unknown command" "$WD" frobnicate
expect_exit 64 "prepare without -o" "$WD" prepare in
expect_exit 64 "prepare without inputs" "$WD" prepare -o out
expect_exit 64 "bad --val-fraction" "$WD" prepare -o out --val-fraction 1.5 in
expect_exit 64 "bad --shard-size" "$WD" prepare -o out --shard-size 12Q in
expect_exit 64 "unknown option" "$WD" prepare -o out --bogus in
expect_exit 64 "import-only option on prepare" "$WD" prepare -o out --vocab 5 in
expect_exit 64 "bad --dtype" "$WD" import -o out --dtype f32 in

# ---- sizes a typo blows up ------------------------------------------------------
# "--shard-size 10" (a forgotten M) would write a file per 10 bytes of tokens.
head -c 600000 /dev/zero | tr '\0' 'a' >typo.txt
expect_exit 64 "--shard-size 10 refused (under 1K)" "$WD" prepare -o typo --shard-size 10 typo.txt
echo "$LAST_OUT" | grep -q "at least 1K" && ok "... saying the minimum" || not_ok "... saying the minimum" "$LAST_OUT"
[ ! -e typo ] && ok "... and writing nothing" || not_ok "... and writing nothing" "$(ls typo | head)"
# A forgotten M on a large corpus: bounded by the count (a sparse file: the
# bound is checked from the input's size, before anything is read).
truncate -s 110M sparse.u16
expect_exit 64 "more than 100000 shards refused" "$WD" import -o many --shard-size 1K --vocab 5 sparse.u16
echo "$LAST_OUT" | grep -q "would write 112640 shard files .* more than 100000" \
    && ok "... naming the count and the bound" || not_ok "... naming the count and the bound" "$LAST_OUT"
rm -f sparse.u16
# Random u32 bytes would infer a vocabulary of ~4.28e9, which no model has.
python3 -c "import os, sys; sys.stdout.buffer.write(os.urandom(4096))" >random.u32
expect_exit 65 "import of random u32 bytes refused" "$WD" import -o rnd --dtype u32 random.u32
echo "$LAST_OUT" | grep -q "random.u32: token .* would make the inferred vocabulary .* 2^24.* --dtype" \
    && ok "... naming the file, the token and --dtype" || not_ok "... naming the file, the token and --dtype" "$LAST_OUT"
[ ! -e rnd/manifest ] && ok "... and no dataset" || not_ok "... and no dataset"
expect_exit 64 "--vocab above 2^24 refused" "$WD" import -o rnd --dtype u32 --vocab 4000000000 random.u32

# ---- prepare --------------------------------------------------------------------
mkdir -p text/sub
for i in 1 2 3 4 5; do
    python3 -c "import sys; sys.stdout.write(''.join('doc $i line %d: the quick brown fox\n' % j for j in range(2000)))" > text/doc$i.txt
done
cp text/doc1.txt text/sub/nested.txt
printf 'hidden' > text/.hidden
check "prepare" "$WD" prepare -o ds --shard-size 64K --val-fraction 0.1 text
check "manifest written" test -f ds/manifest
expect_grep '^weft-dataset 1$' ds/manifest "manifest first line"
expect_grep '^shard val ' ds/manifest "val split present"
check "shards are mode 0640" bash -c '[ -z "$(find ds -type f ! -perm 0640)" ]'
check "no temporary files left" bash -c '[ -z "$(find ds -name ".*")" ]'
"$WD" info ds > info.out 2>&1
expect_grep 'hash +[0-9a-f]{16}' info.out "info prints the dataset hash"
expect_grep 'vocab +256' info.out "info prints the vocab"
expect_grep 'train +[0-9]+ shards' info.out "info prints train counts"
check "verify good dataset" "$WD" verify ds
"$WD" verify ds > /dev/null 2> verify.err
check "no progress bar when stderr is not a terminal" test ! -s verify.err
# Tokens decode to the inputs in sorted order, each followed by token 0.
check "tokens round-trip to the text" python3 - <<'PY'
import os, struct
files = sorted(["text/doc%d.txt" % i for i in range(1, 6)]) + ["text/sub/nested.txt"]
want = b"".join(open(f, "rb").read() + b"\0" for f in files)
names = [l.split()[2] for l in open("ds/manifest") if l.startswith("shard ")]
got = b""
for n in names:
    d = open("ds/" + n, "rb").read()[4096:]
    got += bytes(struct.unpack("<%dH" % (len(d) // 2), d))
assert got == want, (len(got), len(want))
PY
expect_exit 64 "refuse to overwrite without --force" "$WD" prepare -o ds text
check "overwrite with --force" "$WD" prepare -o ds --force --shard-size 64K --val-fraction 0.1 text
expect_exit 66 "prepare missing input" "$WD" prepare -o ds2 nothing-here
expect_grep 'nothing-here' <(echo "$LAST_OUT") "missing input is named"

# ---- import -------------------------------------------------------------------------
python3 - <<'PY'
import struct
open("raw.u16", "wb").write(struct.pack("<5000H", *[(i * 7) % 3000 for i in range(5000)]))
open("raw.u32", "wb").write(struct.pack("<3000I", *[(i * 13) % 100000 for i in range(3000)]))
hdr = [0] * 256; hdr[0] = 20240520; hdr[1] = 1; hdr[2] = 4000
open("llmc.bin", "wb").write(struct.pack("<256i", *hdr) + struct.pack("<4000H", *[i % 50257 for i in range(4000)]))
open("odd.u16", "wb").write(b"abc")
PY
check "import raw u16, inferred vocab" "$WD" import -o imp16 raw.u16
"$WD" info imp16 > imp16.out
expect_grep 'vocab +3000,' imp16.out "inferred vocab is max+1"
check "import raw u32 with --vocab" "$WD" import -o imp32 --dtype u32 --vocab 100000 --val-fraction 0.25 raw.u32
"$WD" info imp32 > imp32.out
expect_grep 'token width 4' imp32.out "vocab over 65536 uses 4-byte tokens"
expect_grep 'val +1 shards +750 tokens' imp32.out "val fraction of imported tokens"
check "import llm.c shard and raw together" "$WD" import -o impl --vocab 50257 llmc.bin raw.u16
"$WD" info impl > impl.out
expect_grep 'train +1 shards +9000 tokens' impl.out "llm.c header skipped, tokens concatenated"
check "verify imported" "$WD" verify imp16 imp32 impl
expect_exit 65 "token >= --vocab" "$WD" import -o bad1 --vocab 2000 raw.u16
expect_grep 'raw.u16: token out of range at offset [0-9]+: expected a token below --vocab 2000, found 2[0-9]{3}' <(echo "$LAST_OUT") "out-of-range token named with file and offset"
head -c 5000 llmc.bin > cut.bin
expect_exit 65 "truncated llm.c shard" "$WD" import -o bad2 cut.bin
expect_grep 'cut.bin: llm.c shard size' <(echo "$LAST_OUT") "truncated llm.c shard named"
expect_exit 65 "raw file with a partial token" "$WD" import -o bad3 odd.u16
expect_grep 'odd.u16.*offset 2' <(echo "$LAST_OUT") "partial token offset named"
expect_exit 66 "import missing input" "$WD" import -o bad4 nope.u16

# ---- damage -------------------------------------------------------------------------
fresh() { rm -rf "$1"; cp -r ds "$1"; }
first_shard() { awk '$1 == "shard" { print $3; exit }' "$1/manifest"; }
second_shard() { awk '$1 == "shard" { n++; if (n == 2) { print $3; exit } }' "$1/manifest"; }

fresh d1; s=$(first_shard d1)
printf '\x01' | dd of=d1/$s bs=1 seek=10000 conv=notrunc status=none
expect_exit 65 "flipped payload byte" "$WD" verify d1
expect_grep "$s: payload checksum mismatch" <(echo "$LAST_OUT") "checksum mismatch names the shard"

fresh d2; s=$(first_shard d2)
printf 'X' | dd of=d2/$s bs=1 seek=0 conv=notrunc status=none
expect_exit 65 "wrong magic" "$WD" verify d2
expect_grep "$s: not a weft token shard: at offset 0 expected magic" <(echo "$LAST_OUT") "wrong magic named"

fresh d3; s=$(first_shard d3)
printf '\x02' | dd of=d3/$s bs=1 seek=8 conv=notrunc status=none
expect_exit 65 "wrong version" "$WD" verify d3
expect_grep "$s: .*offset 8 \(format version\): expected 1, found 2" <(echo "$LAST_OUT") "wrong version named"

fresh d4; s=$(first_shard d4)
truncate -s 20000 d4/$s
expect_exit 65 "truncated shard" "$WD" verify d4
expect_grep "$s: truncated shard: data ends at offset 20000" <(echo "$LAST_OUT") "truncation offset named"

fresh d5; s=$(first_shard d5); s2=$(second_shard d5)
rm d5/$s
expect_exit 66 "missing shard" "$WD" verify d5
expect_grep "$s: shard listed in the manifest is missing" <(echo "$LAST_OUT") "missing shard named"

fresh d6; s=$(first_shard d6); s2=$(second_shard d6)
printf '\x01' | dd of=d6/$s bs=1 seek=9000 conv=notrunc status=none
printf 'Z' | dd of=d6/$s2 bs=1 seek=3 conv=notrunc status=none
expect_exit 65 "two bad shards" "$WD" verify d6
expect_grep "$s: payload" <(echo "$LAST_OUT") "first bad shard named"
expect_grep "$s2: not a weft token shard" <(echo "$LAST_OUT") "second bad shard named too"

fresh d7
sed -i 's/^vocab_size 256$/vocab_size 255/' d7/manifest
expect_exit 65 "manifest disagrees with shards" "$WD" verify d7
expect_grep "vocab size\): expected 255 \(the manifest\), found 256" <(echo "$LAST_OUT") "vocab mismatch named"

fresh d8
sed -i '$d' d8/manifest
expect_exit 65 "truncated manifest" "$WD" verify d8
expect_grep 'd8/manifest: missing "dataset_hash"' <(echo "$LAST_OUT") "truncated manifest named"
expect_exit 65 "info on a truncated manifest" "$WD" info d8

fresh d9
sed -i '0,/^shard train/s/^shard train \([^ ]*\) [0-9]*/shard train \1 7/' d9/manifest
expect_exit 65 "edited manifest" "$WD" verify d9
expect_grep 'dataset_hash mismatch' <(echo "$LAST_OUT") "edited manifest detected"

fresh d10; s=$(first_shard d10)
rm d10/$s; mkdir d10/$s
expect_exit 74 "unreadable shard is an I/O error" "$WD" verify d10
expect_grep "$s" <(echo "$LAST_OUT") "I/O error names the shard"

expect_exit 66 "verify missing dataset" "$WD" verify no-such-dir
expect_exit 66 "info missing dataset" "$WD" info no-such-dir
mkdir empty-dir
expect_exit 66 "verify directory without a manifest" "$WD" verify empty-dir
expect_grep 'empty-dir/manifest' <(echo "$LAST_OUT") "missing manifest named"
head -c 3000 /dev/urandom > junk; mkdir d11; cp junk d11/manifest
expect_exit 65 "random manifest" "$WD" info d11

# The job's configuration: data.path is the dataset to build when -o is not
# given, and the datasets to verify or describe when none is named.
printf '[data]\npath = jobds\n[model]\nn_layer = 2\n[train]\nsteps = 5\n' >job.ini
check "prepare --config JOB.ini INPUT builds the job's data.path" "$WD" prepare --config job.ini text/doc1.txt
check "  ... which verifies" "$WD" verify jobds
check "verify --config JOB.ini verifies the job's data.path" "$WD" verify --config job.ini
expect_grep "verify jobds" <(echo "$("$WD" verify --data.path=jobds 2>&1)") "verify --data.path=DIR names it"
expect_exit 64 "verify with neither a directory nor a job" "$WD" verify
printf '[data]\npth = x\n' >typo.ini
expect_exit 64 "a typo in the job's [data] section is refused" "$WD" info --config typo.ini

echo "1..$TAP_N"
