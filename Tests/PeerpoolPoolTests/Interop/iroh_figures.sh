#!/bin/sh
# Figures for peerpool against iroh, next to iroh against iroh. Run ONLY inside a loopback-only
# network namespace (iroh probes the LAN gateway), from the repository root:
#   unshare --net -- sh Tests/PeerpoolPoolTests/Interop/iroh_figures.sh
# BIN=.build/release/peerpool to measure a release build (default: the debug build).
set -u
if [ "$(ip -o link show | awk -F': ' '{print $2}')" != "lo" ]; then
    echo "iroh_figures: refusing to run outside a loopback-only namespace (unshare --net)" >&2
    exit 2
fi
ip link set lo up
cd "$(dirname "$0")/../../.."
BIN=${BIN:-.build/debug/peerpool}
P=Tests/PeerpoolPoolTests/Interop/iroh_peer.py; PY=.venv-test/bin/python
# Each server reads a FIFO whose only writer is this script (fds 3 and 4): when the script
# ends, the servers see end of input and exit.
dir=$(mktemp -d)
mkfifo "$dir/iroh" "$dir/listen"
$PY -u $P server < "$dir/iroh" > "$dir/iroh.out" 2>&1 &
exec 3> "$dir/iroh"
$BIN listen --address 127.0.0.1:0 --exit-on-stdin-eof < "$dir/listen" > "$dir/listen.out" 2>&1 &
exec 4> "$dir/listen"
sleep 4
read _ iport iid < "$dir/iroh.out"
read _ _ lport _ < "$dir/listen.out"; lid=$(sed -n 2p "$dir/listen.out")
echo "== peerpool ping -> iroh (20)"; $BIN ping $iid@127.0.0.1:$iport --count 20 | sed -n '1p;$p'
echo "== peerpool ping -> peerpool listen (20)"; $BIN ping $lid@127.0.0.1:$lport --count 20 | sed -n '1p;$p'
echo "== iroh ping -> iroh (20)"; $PY -u $P client --peer $iid --addr 127.0.0.1:$iport --mode ping --count 20 | grep TIMING | sed -n '1p;2p;$p'
echo "== iroh ping -> peerpool listen (20)"; $PY -u $P client --peer $lid --addr 127.0.0.1:$lport --mode ping --count 20 | grep TIMING | sed -n '1p;2p;$p'
echo "== echo 16 MiB: iroh client -> iroh server"; $PY -u $P client --peer $iid --addr 127.0.0.1:$iport --mode echo --bytes 16777216 | grep ECHO
echo "== echo 16 MiB: iroh client -> peerpool listen"; $PY -u $P client --peer $lid --addr 127.0.0.1:$lport --mode echo --bytes 16777216 | grep ECHO
echo "== echo 16 MiB: peerpool stream -> iroh server"; s=$(date +%s.%N); head -c 16777216 /dev/zero | $BIN stream $iid@127.0.0.1:$iport --protocol '{"Generic":"echo"}' | wc -c; e=$(date +%s.%N); echo "$(echo "$e - $s" | bc) s"
exec 3>&- 4>&-
wait
rm -rf "$dir"
