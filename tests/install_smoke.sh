#!/bin/sh
# Installs the build into a temporary prefix and builds a C program against
# it through pkg-config, as another project would.
set -eu
build=$1
src=$2
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cat > "$prefix/user.c" <<'C'
#include <kiln.h>
int main(void)
{
    int64_t shape[1] = {3};
    kn_tensor *x = kn_tensor_ones(KN_F32, 1, shape);
    kn_tensor *y = kn_add(x, x);
    double v = 0;
    int64_t i = 2;
    kn_tensor_get(y, &i, &v);
    kn_tensor_unref(y);
    kn_tensor_unref(x);
    return v == 2.0 ? 0 : 1;
}
C
${CC:-cc} -std=c11 -Wall -Werror "$prefix/user.c" -o "$prefix/user" $(pkg-config --cflags --libs kiln)
"$prefix/user"
echo "install smoke test: ok"
