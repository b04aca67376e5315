#!/usr/bin/env bash
# Fetch real editors that are newer than this Debian release ships, for end-to-end tests:
#   Neovim 0.12 (built-in LSP inline completion) and Helix 25.x (`hx`), from Debian's unstable suite.
# They are unpacked into a private root (no change to the system) and run through that root's own
# dynamic loader, because they need a newer libc than the machine has.
# Usage: get-editors.sh [DEST]   (default: ~/.cache/dg-editors)
# Prints the two wrapper paths: DEST/bin/nvim and DEST/bin/hx.
set -euo pipefail
DEST=${1:-$HOME/.cache/dg-editors}
mkdir -p "$DEST" && DEST=$(cd "$DEST" && pwd)   # absolute: apt and the wrappers need it
ROOT=$DEST/root; APT=$DEST/apt
mkdir -p "$ROOT" "$APT/lists/partial" "$APT/cache/archives/partial" "$DEST/debs" "$DEST/bin"
# Reuse the machine's own Debian mirror, with the unstable suite instead of the installed one.
uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri sid main" > "$APT/sources.list"
O=(-o Dir::Etc::sourcelist="$APT/sources.list" -o Dir::Etc::sourceparts=/nonexistent
   -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" -o Debug::NoLocking=1)
if [ ! -x "$ROOT/usr/bin/nvim" ] || [ ! -x "$ROOT/usr/bin/hx" ]; then
  apt-get "${O[@]}" -qq update
  cd "$DEST/debs"
  apt-get "${O[@]}" -qq download neovim neovim-runtime hx libc6 libgcc-s1 libluajit-5.1-2 \
    libluajit-5.1-common libtree-sitter0.26 libunibilium4 libutf8proc3 libuv1t64 lua-lpeg lua-luv
  for d in "$DEST"/debs/*.deb; do dpkg-deb -x "$d" "$ROOT"; done
fi
LIBS="$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/usr/lib/x86_64-linux-gnu/lua/5.1"
cat > "$DEST/bin/nvim" <<W
#!/bin/sh
export VIMRUNTIME=$ROOT/usr/share/nvim/runtime
exec $ROOT/usr/lib64/ld-linux-x86-64.so.2 --library-path $LIBS $ROOT/usr/bin/nvim "\$@"
W
cat > "$DEST/bin/hx" <<W
#!/bin/sh
export HELIX_RUNTIME=\${HELIX_RUNTIME:-$ROOT/usr/lib/hx/runtime}
exec $ROOT/usr/lib64/ld-linux-x86-64.so.2 --library-path $LIBS $ROOT/usr/bin/hx "\$@"
W
chmod +x "$DEST/bin/nvim" "$DEST/bin/hx"
echo "$DEST/bin/nvim"; echo "$DEST/bin/hx"
