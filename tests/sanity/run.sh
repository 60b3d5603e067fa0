#!/usr/bin/env bash
# ansible-test sanity, then ansible-test units, on the working tree: ansible-test wants the collection
# under ansible_collections/<namespace>/<name>, so the tracked and new files are copied there first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
root="$repo/build/sanity"
work="$root/ansible_collections/baseful/branching"
rm -rf "$root"
mkdir -p "$work"
cd "$repo"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work"

# ansible-test bootstraps pip in its sanity virtualenvs with a script from its own download host;
# where that host is out of reach, the stand-in does the same from ensurepip and PyPI.
pip_version="$(python3 -c 'import re, ansible_test._internal.python_requirements as r, inspect; print(re.search(r"pip=.([0-9.]+).", inspect.getsource(r)).group(1))')"
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$cache" ] && ! python3 -c "import urllib.request as u; u.urlopen('https://ci-files.testing.ansible.com', timeout=5)" 2>/dev/null; then
	mkdir -p "$(dirname "$cache")"
	cp "$repo/tests/sanity/get_pip_bootstrap.py" "$cache"
fi

cd "$work"
git init -q && git add -A
python="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
ansible-test sanity --local --python "$python" "$@"
ansible-test units --local --python "$python"
