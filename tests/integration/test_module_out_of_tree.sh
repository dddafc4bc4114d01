#!/usr/bin/env bash
# test_module_out_of_tree.sh — an operator's module, built outside the tree.
#
# Installs the build into a scratch prefix, writes a rules module "hello"
# (function "always") the way the module.h example does, compiles it with
# nothing but `cc` and the installed nerve.pc, and loads it with
# nerve-modload through the real loader. Then checks that a group-writable
# copy of the same file is refused. Needs NERVE_BUILD_DIR (ctest sets it).
set -euo pipefail
umask 022

: "${NERVE_BUILD_DIR:?set by ctest: the build directory}"
modload="$NERVE_BUILD_DIR/tests/nerve-modload"
[ -x "$modload" ] || { echo "FAIL: $modload not built" >&2; exit 1; }

tmp=$(mktemp -d /tmp/nerve-test-oot.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# 1. Install into a scratch prefix.
if ! cmake --install "$NERVE_BUILD_DIR" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log" >&2
    fail "cmake --install into $tmp/prefix"
fi

# GNUInstallDirs puts the library and nerve.pc in lib/ or lib/<multiarch>/.
pc=$(find "$tmp/prefix" -path '*/pkgconfig/nerve.pc' -print -quit)
[ -n "$pc" ] || fail "no pkgconfig/nerve.pc under $tmp/prefix"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
[ -e "$libdir/libnerve.so" ] || fail "no libnerve.so beside $pcdir"

# 2. The installed nerve.pc must describe the installed tree (a relocated
#    install must not point back at the configure-time prefix).
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs nerve) ||
    fail "pkg-config --cflags --libs nerve (PKG_CONFIG_PATH=$pcdir)"
case "$flags" in
*"-I$tmp/prefix/"*) ;;
*) fail "nerve.pc does not follow the install prefix: cflags/libs are '$flags' for an" \
        "install into $tmp/prefix. lib/nerve.pc.in hardcodes the configure-time prefix;" \
        "derive it from the .pc's place, e.g. prefix=\${pcfiledir}/<path from the" \
        "pkgconfig dir to the prefix>, libdir=\${prefix}/@CMAKE_INSTALL_LIBDIR@," \
        "includedir=\${prefix}/@CMAKE_INSTALL_INCLUDEDIR@" ;;
esac

# 3. An operator's module, out of tree.
cat >"$tmp/hello.c" <<'EOF'
#include <nerve/module.h>

static int s_always(const nerve_rule_call_t *call, bool *result)
{
    (void)call;
    *result = true;
    return NERVE_OK;
}

static const nerve_module_fn_t s_functions[] = {
    {"always", {.rule = s_always}, "always true", NULL, NULL},
    {NULL},
};

static const nerve_module_t s_module = {
    NERVE_MODULE_HEADER, NERVE_ROLE_RULES, "hello", "0.3.1", s_functions, NULL, NULL
};

NERVE_MODULE_EXPORT(s_module)
EOF
mkdir -p "$tmp/mods/rules"
# shellcheck disable=SC2086 # $flags is a list of words
cc -shared -fPIC -Wall -Wextra -Werror "$tmp/hello.c" -o "$tmp/mods/rules/hello.so" $flags ||
    fail "compiling hello.c against the installed headers"
chmod 0644 "$tmp/mods/rules/hello.so"

# 4. Load it through the real loader.
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out=$("$modload" "$tmp/mods" rules.hello.always 2>"$tmp/err") ||
    fail "nerve-modload rules.hello.always: $(cat "$tmp/err")"
expect="role: rules
module: hello
version: 0.3.1
function: always
doc: always true
file: $tmp/mods/rules/hello.so"
[ "$out" = "$expect" ] || fail "nerve-modload printed:
$out
expected:
$expect"

# A function the module does not have: exit 1, and it says what it has.
if "$modload" "$tmp/mods" rules.hello.never >/dev/null 2>"$tmp/err"; then
    fail "rules.hello.never resolved"
fi
grep -q "it has: always" "$tmp/err" || fail "missing function: $(cat "$tmp/err")"

# 5. A group-writable copy is refused, naming the file.
mkdir -p "$tmp/gw/rules"
cp "$tmp/mods/rules/hello.so" "$tmp/gw/rules/hello.so"
chmod 0664 "$tmp/gw/rules/hello.so"
set +e
"$modload" "$tmp/gw" rules.hello.always >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "group-writable module: exit $rc, expected 1"
grep -q "$tmp/gw/rules/hello.so" "$tmp/err" || fail "refusal does not name the file: $(cat "$tmp/err")"
grep -q "writable by group" "$tmp/err" || fail "refusal does not say why: $(cat "$tmp/err")"
[ ! -s "$tmp/out" ] || fail "refused module still printed: $(cat "$tmp/out")"

echo "ok: out-of-tree module built against $tmp/prefix and loaded; group-writable copy refused"
