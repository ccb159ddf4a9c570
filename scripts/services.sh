# Sourced by scripts/run, scripts/test, scripts/bench and .ci/run: install what a fresh Debian machine
# lacks (Debian packages, as root or through sudo), start the local PostgreSQL and Redis when they are
# down (the commands of this machine's docs) and wait until they answer; prepare the small Python
# environment of the tests and benchmarks, and the browser test's accessibility checker.

# Installs the Debian packages of the given kinds that are missing: `services` (PostgreSQL, Redis and
# their client tools), `test` (Chromium and its driver, python3-venv, Node.js and npm).
ensure_packages() {
  local need=() kind
  for kind in "$@"; do
    case $kind in
      services)
        command -v pg_isready >/dev/null 2>&1 || need+=(postgresql-client)
        command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
        command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
        # The fault tests also start private servers of their own (tests/service/faults.rs).
        [ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
        command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
        ;;
      test)
        command -v chromium >/dev/null 2>&1 || need+=(chromium)
        command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
        python3 -c "import venv, ensurepip" 2>/dev/null || need+=(python3-venv)
        command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
        ;;
    esac
  done
  [ ${#need[@]} -gt 0 ] || return 0
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing Debian packages: ${need[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}"
}

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

# axe-core (pinned in tests/a11y/package-lock.json) for the browser test's accessibility check.
ensure_a11y() {
  if [ ! -f tests/a11y/node_modules/axe-core/axe.min.js ]; then
    npm ci --prefix tests/a11y --no-audit --no-fund --loglevel=error
  fi
}
