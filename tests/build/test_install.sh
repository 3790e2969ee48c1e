#!/bin/bash
# test_install.sh -- `make install PREFIX=...` gives headers, both libraries,
# the programs and a weft.pc with which an outside program builds (shared and
# static) and runs under mpirun.
. "$(dirname "$0")/../lib.sh"
if [ -n "${SAN:-}" ]; then
    # A sanitized libweft cannot be linked into an unsanitized outside program.
    skip "install and build against it" "sanitizer build (SAN=$SAN)"
    exit 0
fi
prefix="$TMPDIR_TEST/prefix"
check "make install PREFIX=$prefix" make -s -C "$WEFT_ROOT" BUILD="$BUILD" install PREFIX="$prefix"
for f in lib/libweft.a lib/libweft.so lib/libweft.so.0 lib/pkgconfig/weft.pc bin/weft-info \
         include/weft/runtime/weft.h include/weft/collectives/comm.h; do
    [ -e "$prefix/$f" ] && ok "installed $f" || not_ok "installed $f"
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
check "weft.pc points at the prefix" grep -q "^prefix=$prefix\$" "$prefix/lib/pkgconfig/weft.pc"
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
