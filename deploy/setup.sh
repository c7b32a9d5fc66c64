#!/usr/bin/env bash
# Installs what peerpool needs on Debian 12, without prompts, and only what is missing.
#
#   deploy/setup.sh          build and run: ngtcp2 + GnuTLS, libzmq, pkg-config
#   deploy/setup.sh --test   also what the tests use: the anchor (Debian's ngtcp2 example
#                            client and server), pyzmq for the example Python client
#                            (examples/python), iproute2 and nftables (the iroh tests'
#                            network namespaces, and blocking UDP in them), b3sum (BLAKE3 test vectors) and a Python venv in
#                            .venv-test/ with aioquic, iroh, dnslib and cryptography (test peers
#                            and independently built DNS/pkarr vectors)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev libzmq3-dev pkg-config)
want_test=0
if [[ "${1:-}" == "--test" ]]; then
    want_test=1
    packages+=(ngtcp2-server ngtcp2-client python3-venv python3-pip python3-zmq iproute2 nftables b3sum)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q </dev/null
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

if ((want_test)); then
    # aioquic: an independent QUIC implementation, used only by the interoperability tests.
    if ! .venv-test/bin/python -c 'import aioquic' 2>/dev/null; then
        echo "setup: creating .venv-test with aioquic" >&2
        python3 -m venv .venv-test
        .venv-test/bin/pip install -q --disable-pip-version-check 'aioquic>=1.0,<2' </dev/null
    fi
    # iroh: n0's QUIC endpoint (the Python bindings bundle iroh 1.4.1), the peer of the
    # fastn/iroh interoperability tests. Those tests run it only inside a loopback-only network
    # namespace: its port mapper probes the LAN gateway and cannot be switched off.
    if ! .venv-test/bin/python -c 'import iroh' 2>/dev/null; then
        echo "setup: installing iroh into .venv-test" >&2
        .venv-test/bin/pip install -q --disable-pip-version-check 'iroh==1.2.0' </dev/null
    fi
    # dnslib and cryptography: a local DNS server and pkarr packets built independently of the
    # Swift code, used only by PeerpoolDiscoveryTests.
    if ! .venv-test/bin/python -c 'import dnslib, cryptography' 2>/dev/null; then
        echo "setup: adding dnslib and cryptography to .venv-test" >&2
        .venv-test/bin/pip install -q --disable-pip-version-check 'dnslib>=0.9,<1' 'cryptography>=41' </dev/null
    fi
fi
