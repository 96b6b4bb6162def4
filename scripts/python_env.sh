#!/usr/bin/env bash
# Makes (once) the virtualenv the client-library test runs redis-py from, and prints its
# interpreter. The version is pinned: a new redis-py is a change to review, not a surprise.
#   HOLO_VENV  where it lives (default ~/.cache/holostore-venv)
set -euo pipefail

REDIS_PY=7.4.1
venv=${HOLO_VENV:-$HOME/.cache/holostore-venv}
python=$venv/bin/python

if ! "$python" -c "import redis, sys; sys.exit(redis.__version__ != '$REDIS_PY')" 2>/dev/null; then
    command -v python3 >/dev/null || {
        echo "python_env: python3 is missing: apt-get install python3 python3-venv" >&2
        exit 1
    }
    python3 -m venv "$venv" >&2 || {
        echo "python_env: python3 -m venv failed: apt-get install python3-venv" >&2
        exit 1
    }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "redis==$REDIS_PY" >&2
fi
echo "$python"
