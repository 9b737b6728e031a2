#!/usr/bin/env bash
# What a user gets from npm, checked from the packed tarballs in a scratch project:
#
#   .ci/package-check.sh NODE SCRATCH-DIR
#
# 1. Every published package's tarball holds README.md, LICENSE and dist/ with types, and
#    no source map (nor a sourceMappingURL pointing at one).
# 2. A project that installs only what README.md says (`npm i @sagabox/core pg`, and for
#    TypeScript `npm i -D typescript @types/node`) type-checks README.md's example with
#    `tsc --noEmit --strict` (no TS7016 for pg: @types/pg comes with @sagabox/core).
# 3. With every package installed, each entry point of each exports map loads with ESM
#    import and with CommonJS require (require(esm), Node 20.19+ / 22.12+), under NODE.
# Prints "package-check: ok" last when everything passed. Needs `npm run build` first.
set -euo pipefail
node="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
mkdir -p "$2"
dir="$(cd "$2" && pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "package-check: $*"; }
# npm runs under NODE too, so a pass checks that Node's own npm installs the tarballs.
export PATH="$(dirname "$node"):$PATH"
say "node $("$node" --version), npm $(npm --version)"

mkdir -p "$dir/tarballs" "$dir/app"
mapfile -t packages < <(cd "$root" && "$node" -e '
  const fs = require("fs");
  for (const d of fs.readdirSync("packages").sort()) {
    const p = JSON.parse(fs.readFileSync(`packages/${d}/package.json`, "utf8"));
    if (!p.private) console.log(`packages/${d}`);
  }')
(cd "$root" && npm pack --silent $(printf -- '--workspace %s ' "${packages[@]}") --pack-destination "$dir/tarballs" >/dev/null)

# 1. Tarball contents.
for tgz in "$dir"/tarballs/*.tgz; do
  name="$(basename "$tgz")"
  listing="$(tar -tzf "$tgz")"
  for required in package/README.md package/LICENSE package/package.json package/dist/index.js package/dist/index.d.ts; do
    grep -qx "$required" <<<"$listing" || { say "$name lacks $required" >&2; exit 1; }
  done
  if grep -q '\.map$' <<<"$listing"; then say "$name ships source maps" >&2; exit 1; fi
  if tar -xzOf "$tgz" --wildcards 'package/dist/*.js' 'package/dist/*.d.ts' | grep -q 'sourceMappingURL'; then
    say "$name: dist points at source maps it does not ship" >&2; exit 1
  fi
  if grep -q '^package/src/' <<<"$listing"; then say "$name ships src/" >&2; exit 1; fi
done
say "tarballs: README.md, LICENSE, dist with types, no source maps (${#packages[@]} packages)"

# 2. README's example, type-checked with only what the README says to install.
cd "$dir/app"
printf '{ "name": "sagabox-package-check", "private": true, "type": "module" }\n' >package.json
npm install --no-audit --no-fund --loglevel=error "$dir"/tarballs/sagabox-core-*.tgz pg
npm install --no-audit --no-fund --loglevel=error -D typescript @types/node
"$node" -e '
  const readme = require("fs").readFileSync(process.argv[1], "utf8");
  const at = readme.indexOf("\n## Example");
  if (at < 0) throw new Error("README.md has no ## Example section");
  const code = /```js\n([\s\S]*?)```/.exec(readme.slice(at))?.[1];
  if (!code) throw new Error("no js block under ## Example");
  require("fs").writeFileSync("example.ts", code);
' "$root/README.md"
"$node" node_modules/typescript/bin/tsc --noEmit --strict --target es2022 --module nodenext --moduleResolution nodenext \
  --types node example.ts
say "README example: tsc --noEmit --strict passed with @sagabox/core, pg, typescript, @types/node"

# 3. Every entry point, ESM and CommonJS.
npm install --no-audit --no-fund --loglevel=error "$dir"/tarballs/*.tgz
cat >entries.cjs <<'JS'
const fs = require('fs');
const out = [];
for (const tgz of fs.readdirSync(process.argv[2])) {
  const name = tgz.startsWith('sagabox-') && !tgz.startsWith('sagabox-0')
    ? `@sagabox/${tgz.replace(/^sagabox-/, '').replace(/-\d+\.\d+\.\d+.*$/, '')}` : 'sagabox';
  const manifest = require(`${name}/package.json`);
  for (const [sub, target] of Object.entries(manifest.exports)) {
    if (typeof target !== 'object') continue;
    out.push(sub === '.' ? name : `${name}/${sub.slice(2)}`);
  }
}
console.log(out.join('\n'));
JS
mapfile -t entries < <("$node" entries.cjs "$dir/tarballs")
for entry in "${entries[@]}"; do
  "$node" --input-type=module -e "
    const m = await import('$entry');
    if (Object.keys(m).length === 0) throw new Error('$entry: ESM import gave no exports');
  "
  "$node" -e "
    const m = require('$entry');
    if (Object.keys(m).length === 0) throw new Error('$entry: require gave no exports');
  " 2> >(grep -v 'ExperimentalWarning\|--trace-warnings' >&2)
done
say "ESM import and CommonJS require: ${#entries[@]} entry points"
"$node" node_modules/sagabox/dist/main.js --help >/dev/null
say "sagabox --help runs"
say ok
