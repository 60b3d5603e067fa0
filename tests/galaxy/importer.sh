#!/usr/bin/env bash
# galaxy-importer, as Galaxy runs it on an upload (without Docker: no ansible-test), on the collection built
# from the working tree. The collection has no public home yet, so galaxy.yml sets no `repository`, which
# the importer requires: this run alone builds from a copy that has a local one. Any other finding the
# importer reports (a WARNING or an ERROR line) fails.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$repo/build/importer"
rm -rf "$work"
mkdir -p "$work/source"
cd "$repo"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work/source"
printf 'repository: file://%s\n' "$repo" >> "$work/source/galaxy.yml"
ansible-galaxy collection build --output-path "$work" "$work/source" >/dev/null

printf '[galaxy-importer]\nLOG_LEVEL_MAIN = INFO\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\n' > "$work/importer.cfg"
set +e
report="$(cd "$work" && GALAXY_IMPORTER_CONFIG="$work/importer.cfg" python3 -m galaxy_importer.main "$work"/*.tar.gz 2>&1)"
status=$?
set -e
findings="$(grep -E '^(WARNING|ERROR)' <<<"$report" || true)"
if [ "$status" -ne 0 ] || [ -n "$findings" ]; then
	echo "$report"
	echo "galaxy-importer: exit $status; findings:"
	echo "${findings:-none}"
	exit 1
fi
echo "galaxy-importer: no findings ($(grep -c . <<<"$report") lines of report, build/importer)"
