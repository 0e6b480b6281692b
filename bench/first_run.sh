#!/usr/bin/env bash
# Time to first job: wall time from `git clone` of this repository to the first job
# succeeded on the embedded default, through the README's first command (`scripts/dev`,
# which creates a fresh .venv) and the lines `jobline dev` prints. No baseline: this is the
# new user's wait, printed in seconds. The clone is left in a temporary directory.
# Env: JOBLINE_API_PORT  the API's port (default 8000)
set -euo pipefail
source_repo="$(cd "$(dirname "$0")/.." && pwd)"
dir=$(mktemp -d "${TMPDIR:-/tmp}/jobline-first-run.XXXX")
now() { python3 -c 'import time; print(time.time())'; }
start=$(now)
git clone -q "$source_repo" "$dir/jobline"
cd "$dir/jobline"
: > dev.out
setsid scripts/dev > dev.out 2>&1 &
pid=$!
trap 'kill -INT -$pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
until grep -q "^  curl -N" dev.out; do
  kill -0 $pid 2>/dev/null || { cat dev.out >&2; exit 1; }
  sleep 0.2
done
up=$(now)
sed -n 's/^  \(export TOKEN=.*\|JOB=.*\|curl -N .*\)$/\1/p' dev.out > follow.sh
bash follow.sh > follow.out
grep -q "^event: succeeded" follow.out
done_at=$(now)
python3 -c 'import sys; s, u, d, where = sys.argv[1:]; print(f"first-run: clone to jobline dev ready {float(u) - float(s):.1f} s; clone to first job succeeded {float(d) - float(s):.1f} s ({where})")' \
  "$start" "$up" "$done_at" "$dir/jobline"
