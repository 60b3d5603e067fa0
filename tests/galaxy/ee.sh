#!/usr/bin/env bash
# The collection in an execution environment, as ansible-builder sees it: introspection of the installed
# collection finds its Python requirement (meta/execution-environment.yml), and `ansible-builder create`
# makes the build context of an execution environment that installs it. Building the image itself needs
# its base image from a registry, which CI does not reach.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$repo/build/ee"
rm -rf "$work"
mkdir -p "$work"
ansible-galaxy collection build --output-path "$work" "$repo" >/dev/null
ansible-galaxy collection install --no-deps --force -p "$work/collections" "$work"/baseful-branching-*.tar.gz >/dev/null 2>&1

found="$(ansible-builder introspect --sanitize "$work/collections")"
if ! grep -q "docker>=7.0  # from collection baseful.branching" <<<"$found"; then
	echo "$found"
	echo "ee: ansible-builder introspect does not find the collection's Python requirement (docker>=7.0)"
	exit 1
fi

cat > "$work/execution-environment.yml" <<'DEFINITION'
---
version: 3
images:
  base_image:
    name: quay.io/fedora/python-311:latest
dependencies:
  ansible_core:
    package_pip: ansible-core>=2.19
  ansible_runner:
    package_pip: ansible-runner
  galaxy:
    collections:
      - name: baseful.branching
        version: 0.1.0
DEFINITION
ansible-builder create --output-filename Dockerfile --file "$work/execution-environment.yml" --context "$work/context" >/dev/null
for made in Dockerfile _build/requirements.yml _build/scripts/introspect.py; do
	[ -s "$work/context/$made" ] || { echo "ee: ansible-builder create made no $made"; exit 1; }
done
grep -q "baseful.branching" "$work/context/_build/requirements.yml" \
	|| { echo "ee: the build context does not install baseful.branching"; exit 1; }
echo "ee: introspection finds docker>=7.0 for baseful.branching; ansible-builder create made build/ee/context"
