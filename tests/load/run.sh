#!/usr/bin/env bash
# A whole measured run of the gateway core on this machine, the way docs/performance.md reports it:
# builds --release, and for every run of every scenario starts a fresh gateway on a fresh data dir
# (with load agents created through its CLI), drives it with deskgate-load, stops it, and at the
# end prints the median, min and max of the runs.
#
#   tests/load/run.sh                      # idle + chat, 3 runs each
#   RUNS=1 SCENARIOS=chat CHAT_RATE=1000 tests/load/run.sh
#   SCENARIOS=calls CALLS="100 250 500 1000" tests/load/run.sh   # concurrent recorded calls
#
# Knobs (environment):
#   RUNS=3  SCENARIOS="idle chat"  PORT=18080  AGENTS=4  OUT=target/load/<utc time>
#   IDLE_CUSTOMERS=auto (100000, or as many as the open-files limit allows)  IDLE_RAMP=2000
#   IDLE_DURATION=30  CHAT_CONVERSATIONS=1000  CHAT_RATE=5000  CHAT_SIZE=100  CHAT_DURATION=30
#   CHAT_DRAIN=30 (seconds for a backlog to clear before anything counts as lost)
#   SWEEP_RATES="1000 2000 3000 4000 5000" (scenario `sweep`: chat at each rate, then the plot
#                     of latency percentiles against rate, tests/load/plot.py)
#   STALLED_TABS=1 (scenario `stalled`: chat with this percent of never-reading tabs)
#   CHURN_DURATION=20  CHURN_CONCURRENCY=64  CHURN_FRESH=0 (1: a new visitor token per connection)
#   KILL_AFTER=10  KILL_RATE=1000 (scenario `restart`: chat at KILL_RATE msg/s; KILL_AFTER s into
#                     the window the generator kills the gateway with SIGKILL, and run.sh starts it
#                     again on the same data dir and port, as systemd's Restart=on-failure would;
#                     clients reconnect, resume and resend, and nothing may be lost or doubled)
#   CALLS=1000  CALLS_RAMP=50  CALLS_DURATION=30  CALLS_DRAIN=30 (scenario `calls`: concurrent
#                     recorded calls, each a phone leg on /media/twilio and an 8 kHz agent leg on
#                     /media/pcm, 20 ms frames both ways; a lead `load-lead` is created to read
#                     each call's ticket and recording. CALLS may be a list, "100 250 500 1000":
#                     one scenario `calls@N` per count)
#   CALLS_ELSEWHERE=0 (1, with NODES >= 2: each agent's leg goes to another node than its call's
#                     phone leg, which relays it to the node holding the call)
#   LOAD_THREADS=1 (generator worker threads)  GATEWAY_FLAGS="" (added to `deskgate serve`)
#   GATEWAY_LOG=warn (the gateway's log filter; each run's log is kept as OUT/<run>-server.log, e.g.
#                     GATEWAY_LOG=warn,deskgate::store::sqlite=debug times every restart checkpoint)
#   BASELINE=1 also runs the same scenarios against the bare relay (`deskgate-load relay`)
#   NODES=0 (n >= 1: a cluster of n gateway nodes on ports PORT, PORT+1, … sharing a fresh
#            PostgreSQL database on 127.0.0.1:5432 and a redis-server of its own on PORT+500;
#            the generator spreads its connections over the nodes in turn, and the CPU of all
#            nodes together is printed after each run)
#   BUS_SERVERS=0 (k >= 1, with NODES: k more redis-servers on PORT+501, … that the nodes spread
#            their live events over, --bus-redis-urls; presence and the rest stay on the first)
#   GATEWAY_BIN=path  measure this deskgate binary (e.g. one built from another commit) instead
#                     of building the checkout's
#   LOAD_BIN=path     drive it with this deskgate-load binary instead of building the checkout's
#                     (with GATEWAY_BIN too, run.sh builds nothing)
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-idle chat}
PORT=${PORT:-18080}
AGENTS=${AGENTS:-4}
IDLE_CUSTOMERS=${IDLE_CUSTOMERS:-auto}
IDLE_RAMP=${IDLE_RAMP:-2000}
IDLE_DURATION=${IDLE_DURATION:-30}
CHAT_CONVERSATIONS=${CHAT_CONVERSATIONS:-1000}
CHAT_RATE=${CHAT_RATE:-5000}
CHAT_SIZE=${CHAT_SIZE:-100}
CHAT_DURATION=${CHAT_DURATION:-30}
CHAT_DRAIN=${CHAT_DRAIN:-30}
SWEEP_RATES=${SWEEP_RATES:-1000 2000 3000 4000 5000}
STALLED_TABS=${STALLED_TABS:-1}
CHURN_DURATION=${CHURN_DURATION:-20}
CHURN_CONCURRENCY=${CHURN_CONCURRENCY:-64}
CHURN_FRESH=${CHURN_FRESH:-0}
KILL_AFTER=${KILL_AFTER:-10}
KILL_RATE=${KILL_RATE:-1000}
CALLS=${CALLS:-1000}
CALLS_RAMP=${CALLS_RAMP:-50}
CALLS_DURATION=${CALLS_DURATION:-30}
CALLS_DRAIN=${CALLS_DRAIN:-30}
CALLS_ELSEWHERE=${CALLS_ELSEWHERE:-0}
LOAD_THREADS=${LOAD_THREADS:-1}
GATEWAY_FLAGS=${GATEWAY_FLAGS:-}
GATEWAY_LOG=${GATEWAY_LOG:-warn}
RUN_NAME=
BASELINE=${BASELINE:-0}
GATEWAY_BIN=${GATEWAY_BIN:-}
LOAD_BIN=${LOAD_BIN:-}
NODES=${NODES:-0}
BUS_SERVERS=${BUS_SERVERS:-0}
OUT=${OUT:-$ROOT/target/load/$(date -u +%Y%m%dT%H%M%SZ)}

BUILD=()
if [ -z "$GATEWAY_BIN" ]; then BUILD+=(-p deskgate); fi
if [ -z "$LOAD_BIN" ]; then BUILD+=(-p deskgate-load); fi
if [ ${#BUILD[@]} -gt 0 ]; then cargo build --release "${BUILD[@]}"; fi
if [ -n "$GATEWAY_BIN" ]; then GATEWAY=$(realpath "$GATEWAY_BIN"); else GATEWAY=$ROOT/target/release/deskgate; fi
if [ -n "$LOAD_BIN" ]; then LOAD=$(realpath "$LOAD_BIN"); else LOAD=$ROOT/target/release/deskgate-load; fi
mkdir -p "$OUT"

# Every connection is a file descriptor on both sides; the gateway and the generator inherit this.
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
if [ "$IDLE_CUSTOMERS" = auto ]; then
    IDLE_CUSTOMERS=100000
    # Headroom for the listener, the database, agents and HTTP clients.
    if [ "$NOFILE" -lt $((IDLE_CUSTOMERS + 1000)) ] && [[ " $SCENARIOS " == *" idle "* ]]; then
        IDLE_CUSTOMERS=$(( (NOFILE - 1000) / 1000 * 1000 ))
        echo "note: the open-files hard limit is $NOFILE, so the idle scenario holds $IDLE_CUSTOMERS"
        echo "      connections, not 100000. To measure 100k, raise the hard limit to at least 101000"
        echo "      (as root: 'prlimit --pid $$ --nofile=200000:200000', 'nofile' in"
        echo "      /etc/security/limits.conf, or LimitNOFILE=200000 for a systemd unit) and rerun."
    fi
fi

{
    echo "# machine"
    echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "gateway: $GATEWAY ($(sha256sum "$GATEWAY" | cut -c1-16))"
    echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc)"
    echo "memory:  $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
    echo "kernel:  $(uname -r)"
    echo "rustc:   $(rustc --version)"
    echo "nofile:  $NOFILE"
    echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the runs)"
} | tee "$OUT/machine.txt"

PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
export DESKGATE_LOAD_AGENT_PASSWORD=$PASSWORD
SERVER_PID=
DATA=
# The scenario the next gateway is started for.
SCENARIO=
# The cluster's other processes (NODES >= 1): every node, the redis-server, the database.
NODE_PIDS=()
REDIS_PID=
BUS_PIDS=()
DATABASE=
TARGETS=127.0.0.1:$PORT

stop_pid() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}

stop_server() {
    stop_pid "$SERVER_PID"
    # The restart scenario's first gateway, if the generator never killed it.
    if [ -n "$DATA" ] && [ -f "$DATA/gateway.pid" ]; then stop_pid "$(cat "$DATA/gateway.pid")"; fi
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
    NODE_PIDS=()
    stop_pid "$REDIS_PID"
    REDIS_PID=
    for pid in "${BUS_PIDS[@]}"; do stop_pid "$pid"; done
    BUS_PIDS=()
    if [ -n "$DATABASE" ]; then
        psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DATABASE" || true
    fi
    DATABASE=
    SERVER_PID=
    if [ -n "$DATA" ]; then
        # The run's server logs (server.log, node-<n>.log) are kept beside its JSON.
        if [ -n "$RUN_NAME" ]; then
            for log in "$DATA"/server.log "$DATA"/node-*.log; do
                if [ -f "$log" ]; then cp "$log" "$OUT/$RUN_NAME-$(basename "$log")"; fi
            done
        fi
        rm -rf "$DATA"
    fi
    DATA=
}
trap stop_server EXIT

wait_listening() { # [port [pid [log]]]
    local port=${1:-$PORT} pid=${2:-$SERVER_PID} log=${3:-$DATA/server.log}
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the server exited at start-up:" >&2
            cat "$log" >&2 || true
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "the server did not listen on 127.0.0.1:$port within 30 s" >&2
    exit 1
}

# NODES gateway nodes on one fresh PostgreSQL database and one redis-server, sharing a data
# dir for the keyring, as several machines would share them through secrets.
start_cluster() {
    DATA=$(mktemp -d "${TMPDIR:-/tmp}/deskgate-load.XXXXXX")
    DATABASE=deskgate_load_$(date +%s)_$$
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $DATABASE"
    local url=postgres://postgres@127.0.0.1:5432/$DATABASE redis_port=$((PORT + 500))
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        >"$DATA/redis.log" 2>&1 &
    REDIS_PID=$!
    wait_listening "$redis_port" "$REDIS_PID" "$DATA/redis.log"
    local bus_urls=
    for k in $(seq 1 "$BUS_SERVERS"); do
        redis-server --port $((redis_port + k)) --bind 127.0.0.1 --save "" --appendonly no \
            >"$DATA/bus-$k.log" 2>&1 &
        BUS_PIDS+=($!)
        wait_listening $((redis_port + k)) "$!" "$DATA/bus-$k.log"
        bus_urls=${bus_urls:+$bus_urls,}redis://127.0.0.1:$((redis_port + k))/
    done
    for i in $(seq 1 "$AGENTS"); do
        printf '%s' "$PASSWORD" | DESKGATE_DATABASE_URL=$url "$GATEWAY" user add --data "$DATA" \
            --username "load-agent-$i" --role agent --capacity 5000 --password-stdin >/dev/null
    done
    if [[ $SCENARIO == calls* ]]; then
        printf '%s' "$PASSWORD" | DESKGATE_DATABASE_URL=$url "$GATEWAY" user add --data "$DATA" \
            --username load-lead --role lead --capacity 1 --password-stdin >/dev/null
    fi
    TARGETS=
    for n in $(seq 0 $((NODES - 1))); do
        # shellcheck disable=SC2086  # GATEWAY_FLAGS is a list of flags
        env DESKGATE_DATABASE_URL="$url" DESKGATE_REDIS_URL="redis://127.0.0.1:$redis_port" \
            ${bus_urls:+DESKGATE_BUS_REDIS_URLS="$bus_urls"} \
            "$GATEWAY" serve --data "$DATA" --listen "127.0.0.1:$((PORT + n))" --auto-assign \
            --rate-per-sec 1000 --rate-burst 1000 --rate-limits false --log "$GATEWAY_LOG" $GATEWAY_FLAGS \
            >"$DATA/node-$n.log" 2>&1 &
        NODE_PIDS+=($!)
        wait_listening $((PORT + n)) "$!" "$DATA/node-$n.log"
        TARGETS=${TARGETS:+$TARGETS,}127.0.0.1:$((PORT + n))
    done
}

# utime + stime of every node, in clock ticks.
cluster_ticks() {
    local sum=0
    for pid in "${NODE_PIDS[@]}"; do
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$sum"
}

# A fresh data dir, the load agents, and `deskgate serve` on it.
start_gateway() {
    if [ "$NODES" -gt 0 ]; then start_cluster; return; fi
    DATA=$(mktemp -d "${TMPDIR:-/tmp}/deskgate-load.XXXXXX")
    for i in $(seq 1 "$AGENTS"); do
        printf '%s' "$PASSWORD" | "$GATEWAY" user add --data "$DATA" --username "load-agent-$i" \
            --role agent --capacity 5000 --password-stdin >/dev/null
    done
    # The calls scenario reads each call's ticket, which is an agent's, as a lead.
    if [[ $SCENARIO == calls* ]]; then
        printf '%s' "$PASSWORD" | "$GATEWAY" user add --data "$DATA" --username load-lead \
            --role lead --capacity 1 --password-stdin >/dev/null
    fi
    # shellcheck disable=SC2206  # GATEWAY_FLAGS is a list of flags
    local serve=(serve --data "$DATA" --listen "127.0.0.1:$PORT" --auto-assign
        --rate-per-sec 1000 --rate-burst 1000 --rate-limits false --log "$GATEWAY_LOG" $GATEWAY_FLAGS)
    if [ "$SCENARIO" = restart ]; then
        # The generator kills this gateway in the window; like systemd's Restart=on-failure,
        # it is started again at once on the same data dir and port. After the restart the
        # subshell is the gateway (exec), so SERVER_PID stops it.
        (
            "$GATEWAY" "${serve[@]}" >"$DATA/server.log" 2>&1 &
            echo $! >"$DATA/gateway.pid"
            wait $! && exit 0
            echo "deskgate-load run.sh: the gateway exited with status $?; starting it again" \
                >>"$DATA/server.log"
            exec "$GATEWAY" "${serve[@]}" >>"$DATA/server.log" 2>&1
        ) &
        SERVER_PID=$!
    else
        "$GATEWAY" "${serve[@]}" >"$DATA/server.log" 2>&1 &
        SERVER_PID=$!
    fi
    wait_listening
}

start_relay() {
    DATA=$(mktemp -d "${TMPDIR:-/tmp}/deskgate-relay.XXXXXX")
    "$LOAD" relay --listen "127.0.0.1:$PORT" --auto-assign >"$DATA/server.log" 2>&1 &
    SERVER_PID=$!
    wait_listening
}

run_scenario() { # server scenario run
    local server=$1 scenario=$2 run=$3
    local name="$server-$scenario-$run"
    local common=(--target "$TARGETS" --threads "$LOAD_THREADS" --json-out "$OUT/$name.json")
    if [ -f "$DATA/gateway.pid" ]; then
        common+=(--gateway-pid "$(cat "$DATA/gateway.pid")")
    elif [ -n "$SERVER_PID" ]; then
        common+=(--gateway-pid "$SERVER_PID")
    fi
    local ticks_before=0 started=$SECONDS
    if [ ${#NODE_PIDS[@]} -gt 0 ]; then ticks_before=$(cluster_ticks); fi
    echo
    echo "# $name"
    # Other work on the machine shows here first; docs/performance.md notes it with the figures.
    echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/$name.load"
    case $scenario in
        idle)
            "$LOAD" idle "${common[@]}" --customers "$IDLE_CUSTOMERS" --ramp "$IDLE_RAMP" \
                --duration "$IDLE_DURATION" | tee "$OUT/$name.txt"
            ;;
        churn)
            local fresh=()
            if [ "$CHURN_FRESH" = 1 ]; then fresh=(--fresh-visitors); fi
            "$LOAD" churn "${common[@]}" --duration "$CHURN_DURATION" \
                --concurrency "$CHURN_CONCURRENCY" "${fresh[@]}" | tee "$OUT/$name.txt"
            ;;
        chat)
            "$LOAD" chat "${common[@]}" --conversations "$CHAT_CONVERSATIONS" --agents "$AGENTS" \
                --rate "$CHAT_RATE" --size "$CHAT_SIZE" --duration "$CHAT_DURATION" \
                --drain "$CHAT_DRAIN" | tee "$OUT/$name.txt"
            ;;
        stalled)
            "$LOAD" chat "${common[@]}" --conversations "$CHAT_CONVERSATIONS" --agents "$AGENTS" \
                --rate "$CHAT_RATE" --size "$CHAT_SIZE" --duration "$CHAT_DURATION" \
                --drain "$CHAT_DRAIN" --stalled-tabs "$STALLED_TABS" | tee "$OUT/$name.txt"
            ;;
        restart)
            "$LOAD" chat "${common[@]}" --conversations "$CHAT_CONVERSATIONS" --agents "$AGENTS" \
                --rate "$KILL_RATE" --size "$CHAT_SIZE" --duration "$CHAT_DURATION" \
                --drain "$CHAT_DRAIN" --kill-after "$KILL_AFTER" | tee "$OUT/$name.txt"
            ;;
        calls@*)
            local elsewhere=()
            if [ "$CALLS_ELSEWHERE" = 1 ]; then elsewhere=(--agents-elsewhere); fi
            "$LOAD" calls "${common[@]}" --calls "${scenario#calls@}" --agents "$AGENTS" \
                --media-secret-file "$DATA/sites/demo.identity-secret" --ramp "$CALLS_RAMP" \
                --duration "$CALLS_DURATION" --drain "$CALLS_DRAIN" "${elsewhere[@]}" \
                | tee "$OUT/$name.txt"
            ;;
        sweep@*)
            "$LOAD" chat "${common[@]}" --conversations "$CHAT_CONVERSATIONS" --agents "$AGENTS" \
                --rate "${scenario#sweep@}" --size "$CHAT_SIZE" --duration "$CHAT_DURATION" \
                --drain "$CHAT_DRAIN" | tee "$OUT/$name.txt"
            ;;
        *)
            echo "unknown scenario $scenario" >&2
            exit 1
            ;;
    esac
    if [ ${#NODE_PIDS[@]} -gt 0 ]; then
        local ticks=$(( $(cluster_ticks) - ticks_before )) secs=$((SECONDS - started))
        echo "cluster of ${#NODE_PIDS[@]} nodes: $(( ticks * 100 / $(getconf CLK_TCK) / (secs > 0 ? secs : 1) )) % of a core over the ${secs} s run (setup included)" \
            | tee -a "$OUT/$name.txt"
    fi
}

if [ "$NODES" -gt 0 ] && [[ " $SCENARIOS " == *" restart "* ]]; then
    echo "the restart scenario runs one node (NODES=0); a node killed in a cluster is covered by" >&2
    echo "the suite's cluster tests" >&2
    exit 1
fi
SERVERS=gateway
if [ "$BASELINE" = 1 ]; then SERVERS="gateway relay"; fi
if [ "$NODES" -gt 0 ]; then SERVERS=cluster$NODES; fi
# `sweep` stands for chat at every rate of SWEEP_RATES.
EXPANDED=""
for scenario in $SCENARIOS; do
    if [ "$scenario" = sweep ]; then
        for rate in $SWEEP_RATES; do EXPANDED="$EXPANDED sweep@$rate"; done
    elif [ "$scenario" = calls ]; then
        for n in $CALLS; do EXPANDED="$EXPANDED calls@$n"; done
    else
        EXPANDED="$EXPANDED $scenario"
    fi
done
SCENARIOS=$EXPANDED
for run in $(seq 1 "$RUNS"); do
    for scenario in $SCENARIOS; do
        for server in $SERVERS; do
            SCENARIO=$scenario
            # The bare relay has no media endpoints, and keeps nothing to restart with.
            if [ "$server" = relay ] && [[ $scenario == calls@* || $scenario == restart ]]; then continue; fi
            if [ "$server" = relay ]; then start_relay; else start_gateway; fi
            run_scenario "$server" "$scenario" "$run"
            RUN_NAME=$server-$scenario-$run
            stop_server
            RUN_NAME=
        done
    done
done

echo
for server in $SERVERS; do
    for scenario in $SCENARIOS; do
        if [ "$server" = relay ] && [[ $scenario == calls@* || $scenario == restart ]]; then continue; fi
        echo "# $server $scenario: median, min and max over $RUNS runs"
        "$LOAD" summarize "$OUT"/"$server-$scenario"-*.json | tee "$OUT/$server-$scenario-summary.txt"
        echo
    done
done
if [[ "$SCENARIOS" == *sweep@* ]]; then
    python3 "$ROOT/tests/load/plot.py" "$OUT"/*-sweep@*.json -o "$OUT/latency-vs-rate.svg"
fi
echo "reports in $OUT"
