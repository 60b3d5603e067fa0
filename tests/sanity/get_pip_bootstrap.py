"""Stand-in for ansible-test's pip bootstrap script (get-pip.py), for machines that reach PyPI but
not ansible-test's download host. ansible-test runs it inside each fresh sanity virtualenv with
pip-install arguments; it bootstraps pip from the interpreter's own ensurepip, then installs them.
`make sanity` copies it to ~/.ansible/test/cache/get_pip_<version>.py when that file is missing."""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
arguments = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *arguments])
