#!/bin/bash
# test_install.sh -- `make install PREFIX=...` gives the public headers (and
# only those), both libraries, the programs and a weft.pc with which an
# outside program builds (shared and static) and runs under mpirun; and
# libweft.so exports only weft_ symbols.
. "$(dirname "$0")/../lib.sh"
if [ -n "${SAN:-}" ]; then
    # A sanitized libweft cannot be linked into an unsanitized outside program.
    skip "install and build against it" "sanitizer build (SAN=$SAN)"
    exit 0
fi
prefix="$TMPDIR_TEST/prefix"
check "make install PREFIX=$prefix" make -s -C "$WEFT_ROOT" BUILD="$BUILD" install PREFIX="$prefix"
for f in lib/libweft.a lib/libweft.so lib/libweft.so.0 lib/pkgconfig/weft.pc bin/weft-info \
         include/weft/weft.h include/weft/runtime/api.h include/weft/collectives/comm.h; do
    [ -e "$prefix/$f" ] && ok "installed $f" || not_ok "installed $f"
done

# The installed headers are exactly the Makefile's PUBLIC_HDRS.
make -s -C "$WEFT_ROOT" public-headers | sort >"$TMPDIR_TEST/public"
(cd "$prefix/include/weft" && find . -type f | sed 's|^\./||' | sort) >"$TMPDIR_TEST/installed"
check "installed headers are exactly PUBLIC_HDRS (no internal header)" \
    diff "$TMPDIR_TEST/public" "$TMPDIR_TEST/installed"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
check "weft.pc points at the prefix" grep -q "^prefix=$prefix\$" "$prefix/lib/pkgconfig/weft.pc"
check "pkg-config --cflags weft is -I<prefix>/include/weft" \
    sh -c "pkg-config --cflags weft | grep -q -- '-I$prefix/include/weft\\( \\|\$\\)'"

# Every public header compiles on its own from the installed tree alone, so
# the public headers include only public headers (an internal one is not
# installed) and each includes what it uses.
bad=""
while read -r h; do
    printf '#include <%s>\n#include <%s>\nint main(void) { return 0; }\n' "$h" "$h" >"$TMPDIR_TEST/one.c"
    gcc -std=c11 -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags weft) "$TMPDIR_TEST/one.c" \
        >"$TMPDIR_TEST/one.log" 2>&1 || bad="$bad $h: $(head -3 "$TMPDIR_TEST/one.log")"
done <"$TMPDIR_TEST/public"
[ -z "$bad" ] && ok "each installed public header compiles alone (twice) with -std=c11 -Werror" \
    || not_ok "each installed public header compiles alone (twice) with -std=c11 -Werror" "$bad"

# Only weft_ symbols are exported. Filtered out: the symbols the static
# linker itself may define in any shared object's dynamic symbol table
# (_init/_fini from crti.o, and _edata/_end/__bss_start, which older GNU ld
# versions export from every .so); none of them is weft code.
so="$WEFT_ROOT/$BUILD/lib/libweft.so"
nm -D --defined-only "$so" | awk '{print $NF}' \
    | grep -vxE '_init|_fini|_edata|_end|__bss_start' >"$TMPDIR_TEST/exported"
if [ -s "$TMPDIR_TEST/exported" ] && ! grep -qv '^weft_' "$TMPDIR_TEST/exported"; then
    ok "libweft.so exports only weft_ symbols ($(wc -l <"$TMPDIR_TEST/exported") of them)"
else
    not_ok "libweft.so exports only weft_ symbols" "$(grep -v '^weft_' "$TMPDIR_TEST/exported" | head -20)"
fi
check "internal functions are hidden (weft_net_sched_run, weft_ckpt_plan_build)" \
    sh -c "! grep -qxE 'weft_net_sched_run|weft_ckpt_plan_build' '$TMPDIR_TEST/exported'"

src="$WEFT_ROOT/examples/hello_allreduce.c"
check "example builds against the shared library via pkg-config" \
    gcc "$src" $(pkg-config --cflags weft) $(pkg-config --libs weft) -o "$TMPDIR_TEST/hello"
check "example builds against the static library with pkg-config --static" \
    gcc "$src" $(pkg-config --cflags weft) -L"$prefix/lib" -Wl,-Bstatic -lweft -Wl,-Bdynamic \
        $(pkg-config --static --libs weft | sed 's/-lweft//') -o "$TMPDIR_TEST/hello-static"
check "the static build does not need libweft.so" \
    sh -c "! ldd '$TMPDIR_TEST/hello-static' | grep -q libweft"
LD_LIBRARY_PATH="$prefix/lib" weft_mpirun 3 -x LD_LIBRARY_PATH "$TMPDIR_TEST/hello" >"$TMPDIR_TEST/out" 2>&1
expect_grep "hello from 3 ranks: v\[3\] = 4 \(expected 4\)" "$TMPDIR_TEST/out" "installed example runs on 3 ranks"
weft_mpirun 2 "$TMPDIR_TEST/hello-static" >"$TMPDIR_TEST/out2" 2>&1
expect_grep "hello from 2 ranks: v\[3\] = 3.5" "$TMPDIR_TEST/out2" "static example runs on 2 ranks"

# examples/mlp built as a user would: a copy of the source outside the
# repository, only the installed headers (pkg-config --cflags), linked
# against the installed libweft.so; it must train as the in-tree build does.
mkdir -p "$TMPDIR_TEST/user" && cp "$WEFT_ROOT/examples/mlp/mlp.c" "$TMPDIR_TEST/user/"
check "examples/mlp/mlp.c builds from the installed tree (pkg-config --cflags --libs weft)" \
    sh -c "cd '$TMPDIR_TEST/user' && gcc mlp.c \$(pkg-config --cflags --libs weft) -lm -o mlp"
check "the user's mlp links the installed libweft.so" \
    sh -c "LD_LIBRARY_PATH='$prefix/lib' ldd '$TMPDIR_TEST/user/mlp' | grep -q '$prefix/lib/libweft.so'"
LD_LIBRARY_PATH="$prefix/lib" weft_mpirun 2 -x LD_LIBRARY_PATH "$TMPDIR_TEST/user/mlp" --run.dir="$TMPDIR_TEST/run-user" \
    >"$TMPDIR_TEST/mlp.out" 2>&1
check "installed mlp on 2 ranks: final loss below 0.1 (linear fit: 0.276)" python3 - "$TMPDIR_TEST/mlp.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"final loss ([0-9.]+) on 2 ranks", text)
assert m and float(m.group(1)) < 0.1, text[-2000:]
PY
weft_mpirun 2 "$WEFT_ROOT/$BUILD/examples/mlp" --run.dir="$TMPDIR_TEST/run-tree" >"$TMPDIR_TEST/mlp-tree.out" 2>&1
losses() { python3 -c 'import json,sys; print([json.loads(l)["loss"] for l in open(sys.argv[1])])' "$1/metrics.jsonl"; }
check "installed mlp gives the same losses as the in-tree build (metrics.jsonl, bitwise)" \
    diff <(losses "$TMPDIR_TEST/run-tree") <(losses "$TMPDIR_TEST/run-user")
