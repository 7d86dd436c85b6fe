#!/usr/bin/env bash
# Applies the worked example of docs/extending.md (examples/extending/tags.patch: a `tags`
# resource with list, get and a validated create) to a copy of this checkout and holds the
# guide to its promises, so the steps cannot drift from the code:
#   - the patch applies, and touches at most 3 files in src/ and 7 in all;
#   - the resource module is at most 110 lines;
#   - one command (scripts/api-types.sh) regenerates everything derived from the API, and
#     only the OpenAPI snapshot and the TypeScript types change with it;
#   - the example's own tests and the document checks pass.
# CI runs it after the test suite (.ci/run); it reuses target/ for the dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
patch="$root/examples/extending/tags.patch"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The working tree's tracked files, uncommitted edits included (what a contributor has).
git ls-files -z | xargs -0 cp --parents -t "$work"
cd "$work"
git init -q && git add -A && git -c user.name=check -c user.email=check@localhost commit -qm base

git apply "$patch"
touched=$(git apply --numstat "$patch" | wc -l)
in_src=$(git apply --numstat "$patch" | awk '$3 ~ /^src\//' | wc -l)
module_lines=$(wc -l < src/api/tags.rs)
echo "the example touches $touched files ($in_src in src/); src/api/tags.rs is $module_lines lines"
fail=0
((touched <= 7)) || { echo "FAIL: more than 7 files" >&2; fail=1; }
((in_src <= 3)) || { echo "FAIL: more than 3 files in src/" >&2; fail=1; }
((module_lines <= 110)) || { echo "FAIL: the module is over 110 lines" >&2; fail=1; }

# The dependencies are built once for both trees: only the two path crates are rebuilt here.
export CARGO_TARGET_DIR="$root/target"
bash scripts/api-types.sh
git add -A
derived=$(git diff --cached --name-only HEAD | grep -v -x -F -f <(git apply --numstat "$patch" | awk '{print $3}') || true)
expected=$'examples/supagate-api.d.ts\ntests/api/snapshots/api__openapi__openapi.snap'
if [ "$derived" != "$expected" ]; then
  echo "FAIL: the one command changed other files than the two derived ones:" >&2
  echo "$derived" >&2
  fail=1
fi
INSTA_UPDATE=no cargo nextest run --locked --test api -E 'test(/^tags::/) | test(/^openapi::/)'
exit $fail
