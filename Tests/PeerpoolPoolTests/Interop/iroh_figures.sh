#!/bin/sh
# Figures for peerpool against iroh, next to iroh against iroh. Run ONLY inside a loopback-only
# network namespace (iroh probes the LAN gateway), from the repository root:
#   unshare --net -- sh Tests/PeerpoolPoolTests/Interop/iroh_figures.sh
# BIN=.build/release/peerpool to measure a release build (default: the debug build).
set -u
ip link set lo up
cd "$(dirname "$0")/../../.."
BIN=${BIN:-.build/debug/peerpool}
P=Tests/PeerpoolPoolTests/Interop/iroh_peer.py; PY=.venv-test/bin/python
mkfifo /tmp/irohfig.$$; (sleep 300 > /tmp/irohfig.$$ &)
$PY -u $P server < /tmp/irohfig.$$ > /tmp/irohfig-srv.out 2>&1 &
mkfifo /tmp/irohfig2.$$; (sleep 300 > /tmp/irohfig2.$$ &)
$BIN listen --address 127.0.0.1:0 --exit-on-stdin-eof < /tmp/irohfig2.$$ > /tmp/irohfig-listen.out 2>&1 &
sleep 4
read _ iport iid < /tmp/irohfig-srv.out
read _ _ lport _ < /tmp/irohfig-listen.out; lid=$(sed -n 2p /tmp/irohfig-listen.out)
echo "== peerpool ping -> iroh (20)"; $BIN ping $iid@127.0.0.1:$iport --count 20 | sed -n '1p;$p'
echo "== peerpool ping -> peerpool listen (20)"; $BIN ping $lid@127.0.0.1:$lport --count 20 | sed -n '1p;$p'
echo "== iroh ping -> iroh (20)"; $PY -u $P client --peer $iid --addr 127.0.0.1:$iport --mode ping --count 20 | grep TIMING | sed -n '1p;2p;$p'
echo "== iroh ping -> peerpool listen (20)"; $PY -u $P client --peer $lid --addr 127.0.0.1:$lport --mode ping --count 20 | grep TIMING | sed -n '1p;2p;$p'
echo "== echo 16 MiB: iroh client -> iroh server"; $PY -u $P client --peer $iid --addr 127.0.0.1:$iport --mode echo --bytes 16777216 | grep ECHO
echo "== echo 16 MiB: iroh client -> peerpool listen"; $PY -u $P client --peer $lid --addr 127.0.0.1:$lport --mode echo --bytes 16777216 | grep ECHO
echo "== echo 16 MiB: peerpool stream -> iroh server"; s=$(date +%s.%N); head -c 16777216 /dev/zero | $BIN stream $iid@127.0.0.1:$iport --protocol '{"Generic":"echo"}' | wc -c; e=$(date +%s.%N); echo "$(echo "$e - $s" | bc) s"
rm -f /tmp/irohfig.$$ /tmp/irohfig2.$$
