# Sourced by scripts/run, scripts/test and scripts/bench: start the local PostgreSQL and Redis when
# they are down (the commands of this machine's docs), and wait until they answer; prepare the small
# Python environment of the tests and benchmarks.
ensure_services() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis" >&2
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; return 1; }
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not answering on 127.0.0.1:6379" >&2; return 1; }
}

# The venv `.venv-test` (numpy, pillow, pytest, onnxruntime; no torch), made or repaired when needed,
# in `venv`; exports ORT_DYLIB_PATH (unless set) as the absolute path of its libonnxruntime.so, since
# cargo runs each test binary in its own crate's directory.
ensure_test_venv() {
  venv=.venv-test
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import numpy, PIL, pytest, onnxruntime" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r training/requirements-test.txt onnxruntime==1.32.0
  fi
  ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(ls "$PWD/$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)}
  export ORT_DYLIB_PATH
}
