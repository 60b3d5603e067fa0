#!/usr/bin/env bash
# The collection's documentation site: every module, role and filter from their own documentation, the
# playbooks and guides from docs/docsite, as HTML under build/docs/build/html. Documents the collection as
# installed (`make install`), the way antsibull-docs builds docs.ansible.com; warnings fail the build.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
site="$repo/build/docs"
rm -rf "$site"
mkdir -p "$site"
antsibull-docs sphinx-init --use-current --fail-on-error --dest-dir "$site" --project baseful.branching \
	--title "baseful.branching" --html-short-title "baseful.branching" --copyright "baseful.branching contributors" \
	baseful.branching >/dev/null
cd "$site"
# sphinx-init's build.sh does these two steps through rsync, which a fresh machine may lack.
antsibull-docs --config-file antsibull-docs.cfg collection --use-current --fail-on-error --dest-dir rst baseful.branching
# Every warning fails the build, but for those of references into docs.ansible.com and docs.python.org
# (their intersphinx inventories), which resolve only where those sites can be reached.
sphinx-build -M html rst build -c . --keep-going -q -w warnings.log
offline='intersphinx inventor|failed to reach any of the inventories|undefined label: .(common_return_values|ansible_configuration_settings|ansible_collections\.ansible\.builtin\.)|envvar. reference target not found: ANSIBLE_'
if grep -vE "$offline" warnings.log | grep -q .; then
	grep -vE "$offline" warnings.log
	echo "docs: the warnings above fail the build"
	exit 1
fi
echo "docs: $site/build/html/index.html ($(grep -cE "$offline" warnings.log || true) warnings of unreachable docs.ansible.com and docs.python.org references)"
