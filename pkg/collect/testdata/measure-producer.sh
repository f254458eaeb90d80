#!/bin/bash
# Measures the CPU and memory of a running `sysmon produce` at the default
# 2 s interval on a host with N processes: it starts idle `sleep`s until N
# extra processes exist, runs the producer against a consumer address that
# refuses connections (so only sampling, encoding and the in-memory outbox
# run), reads the producer's CPU ticks before and after SECONDS, and kills
# exactly the pids it started.
#
#   pkg/collect/testdata/measure-producer.sh ./sysmon 2000 60
set -euo pipefail
bin=${1:?usage: $0 SYSMON_BINARY [N] [SECONDS]}
n=${2:-2000}
secs=${3:-60}
pids=()
# A spool of its own: the default one belongs to a real producer, which
# must not later replay these measurement batches.
spool=$(mktemp -d)
cleanup() {
	[ -n "${prod:-}" ] && kill "$prod" 2>/dev/null || true
	[ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$spool"
}
trap cleanup EXIT
for _ in $(seq "$n"); do sleep 3600 & pids+=($!); done
PRODUCER_USE_TLS=false PRODUCER_SPOOL_DIR="$spool" "$bin" produce --consumer ws://127.0.0.1:9/ --interval 2s --log-level error >/dev/null 2>&1 &
prod=$!
sleep 6 # the first scan reads every process's files once
procs=$(ls /proc | grep -c '^[0-9]')
t0=$(awk '{print $14+$15}' /proc/$prod/stat); s0=$(date +%s.%N)
sleep "$secs"
t1=$(awk '{print $14+$15}' /proc/$prod/stat); s1=$(date +%s.%N)
rss=$(awk '/VmRSS/{print $2}' /proc/$prod/status)
awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v p="$procs" -v rss="$rss" 'BEGIN{
  cpu=(t1-t0)/100; wall=s1-s0; samples=wall/2;
  printf "%d processes: producer CPU %.2f s in %.0f s = %.2f%% of one core, %.1f us per process per sample, RSS %.1f MiB\n",
    p, cpu, wall, 100*cpu/wall, cpu/samples/p*1e6, rss/1024}'
