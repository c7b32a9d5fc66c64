// swift-tools-version:6.1
//
// peerpool: layers from the bottom up; each module imports only modules on lines above it.
//
//   CNGTCP2, CZMQ          C system libraries (Debian: libngtcp2-crypto-gnutls-dev, libzmq3-dev)
//   CLinuxProcess          the Linux process calls Swift cannot import (pidfd_open, prctl, pipe2)
//   PeerpoolErrors         the one error shape: snake_case codes scoped to their type, message, source location
//   PeerpoolIdentity       ID52 names, ed25519 secret keys, self-signed certificates
//   PeerpoolDiscovery      (Identity) iroh's discovery: z-base-32, BLAKE3, pkarr packets, DNS TXT lookups, relay frames
//   PeerpoolRelay          (Identity, Discovery, NIO) iroh relay client: WebSocket to /relay, datagrams addressed by endpoint id
//   PeerpoolProtocol       (Identity, NIOCore) fastn's value types: stream protocols and headers, JSON, peer
//                          addresses, the StreamProvider/PeerByteStream protocols; no QUIC
//   PeerpoolWire           (CZMQ, Protocol) the versioned ZeroMQ wire protocol: frames, codes, every message
//                          body as a typed value with one encoder and one decoder, sockets on their own thread
//   PeerpoolQUIC           (CNGTCP2, Identity) authenticated QUIC endpoint, connections and streams
//   PeerpoolPool           (QUIC, Protocol, Discovery) fastn's stream protocol on QUIC streams, getStream over pooled
//                          connections, the accepting side; re-exports PeerpoolProtocol
//   PeerpoolClient         (Wire, Protocol) SupervisorClient and SupervisedStream: an application's side of a
//                          running supervisor, without QUIC, ngtcp2 or GnuTLS
//   PeerpoolProcess        (CLinuxProcess) child processes with pidfds and process groups, parent death, exit status
//   PeerpoolWorker         (Pool, Wire) `peerpool worker`: one shard's pool serving the supervisor's requests
//   PeerpoolSupervisor     (Worker, Client, Process) worker processes, sharding, crash isolation;
//                          re-exports PeerpoolClient and PeerpoolProcess
//   PeerpoolCommandSupport (QUIC) what the command and the benchmarks share: child processes, stop requests
//   peerpool               the command-line tool
//   PeerpoolBenchmarks     `peerpool-bench`: benchmarks beside their anchors, not shipped in the command
import PackageDescription

let package = Package(
    name: "peerpool",
    products: [
        .executable(name: "peerpool", targets: ["peerpool"]),
        .executable(name: "peerpool-bench", targets: ["PeerpoolBenchmarks"]),
        .library(name: "PeerpoolErrors", targets: ["PeerpoolErrors"]),
        .library(name: "PeerpoolIdentity", targets: ["PeerpoolIdentity"]),
        .library(name: "PeerpoolDiscovery", targets: ["PeerpoolDiscovery"]),
        .library(name: "PeerpoolRelay", targets: ["PeerpoolRelay"]),
        .library(name: "PeerpoolProtocol", targets: ["PeerpoolProtocol"]),
        .library(name: "PeerpoolQUIC", targets: ["PeerpoolQUIC"]),
        .library(name: "PeerpoolPool", targets: ["PeerpoolPool"]),
        .library(name: "PeerpoolWire", targets: ["PeerpoolWire"]),
        .library(name: "PeerpoolClient", targets: ["PeerpoolClient"]),
        .library(name: "PeerpoolSupervisor", targets: ["PeerpoolSupervisor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/attaswift/BigInt.git", from: "6.0.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // Already in the graph through async-http-client; named here for the relay client's https.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.36.0"),
        // Already in the graph through swift-nio; named here for the deadline heaps (reactor timers,
        // the supervisor's pending opens).
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
    ],
    targets: [
        // ngtcp2 0.12 + its GnuTLS crypto helper + GnuTLS. The shim holds only what Swift cannot
        // import: versioned function-like macros, a variadic logging callback, gnutls_free.
        .systemLibrary(
            name: "CNGTCP2",
            pkgConfig: "libngtcp2_crypto_gnutls",
            providers: [.apt(["libngtcp2-dev", "libngtcp2-crypto-gnutls-dev", "libgnutls28-dev"])]
        ),
        // libzmq. No pkgConfig on purpose: Debian's libzmq.pc adds -isystem flags SwiftPM rejects.
        .systemLibrary(name: "CZMQ", providers: [.apt(["libzmq3-dev"])]),
        // pidfd_open and prctl(PR_SET_PDEATHSIG): a variadic syscall and a variadic prctl.
        .systemLibrary(name: "CLinuxProcess"),
        // The one shape of every error: a snake_case code scoped to its type, a message, a source
        // location; equality on the code. No dependencies, so every layer can use it.
        .target(name: "PeerpoolErrors"),
        .target(
            name: "PeerpoolWire",
            dependencies: [
                "PeerpoolErrors",
                "CZMQ",
                "PeerpoolProtocol",
                "PeerpoolIdentity",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "PeerpoolIdentity",
            dependencies: [
                "PeerpoolErrors",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "BigInt", package: "BigInt"),
            ]
        ),
        // Finding a peer by its key alone, as iroh does: DNS TXT records under `_iroh.<z32>`, signed
        // pkarr packets, and the relay protocol's values. Knows nothing of QUIC or the pool.
        .target(
            name: "PeerpoolDiscovery",
            dependencies: [
                "PeerpoolErrors",
                "PeerpoolIdentity",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The iroh relay client: one WebSocket to a relay's /relay, the challenge handshake,
        // keep-alive and reconnects, and datagrams addressed by endpoint id. No QUIC.
        .target(
            name: "PeerpoolRelay",
            dependencies: [
                "PeerpoolErrors",
                "PeerpoolIdentity",
                "PeerpoolDiscovery",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // fastn's value types, without QUIC: what a client of a supervisor shares with the pool.
        .target(
            name: "PeerpoolProtocol",
            dependencies: [
                "PeerpoolErrors",
                "PeerpoolIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "PeerpoolQUIC",
            dependencies: [
                "PeerpoolErrors",
                "CNGTCP2",
                "PeerpoolIdentity",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "PeerpoolPool",
            dependencies: [
                "PeerpoolRelay",
                .product(name: "NIOPosix", package: "swift-nio"),
                "PeerpoolErrors",
                "PeerpoolProtocol",
                "PeerpoolQUIC",
                "PeerpoolDiscovery",
                "PeerpoolIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // A supervisor's client: no QUIC in its closure (ClientDependencyTests checks it).
        .target(
            name: "PeerpoolClient",
            dependencies: [
                "PeerpoolErrors",
                "CZMQ",
                "PeerpoolWire",
                "PeerpoolProtocol",
                "PeerpoolIdentity",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Spawning and watching child processes, and a child's side of its parent's death.
        .target(name: "PeerpoolProcess", dependencies: ["PeerpoolErrors", "CLinuxProcess"]),
        // One worker process: its pool, serving what the supervisor routes to its shard.
        .target(
            name: "PeerpoolWorker",
            dependencies: [
                "PeerpoolErrors",
                "CZMQ",
                "PeerpoolWire",
                "PeerpoolPool",
                "PeerpoolQUIC",
                "PeerpoolIdentity",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "PeerpoolSupervisor",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                "PeerpoolErrors",
                // WorkerSettings: what the supervisor writes to each worker's standard input.
                "PeerpoolWorker",
                "PeerpoolClient",
                "PeerpoolProcess",
                "PeerpoolWire",
                "PeerpoolPool",
                "PeerpoolQUIC",
                "PeerpoolIdentity",
                "CLinuxProcess",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // What the command and the benchmarks share: clean-exit requests, a silent UDP peer.
        .target(
            name: "PeerpoolCommandSupport",
            dependencies: [
                "PeerpoolErrors",
                "PeerpoolQUIC", "PeerpoolIdentity",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "peerpool",
            dependencies: [
                "PeerpoolRelay",
                "PeerpoolIdentity",
                "PeerpoolDiscovery",
                "PeerpoolQUIC",
                "PeerpoolPool",
                "PeerpoolWire",
                "PeerpoolSupervisor",
                "PeerpoolWorker",
                "PeerpoolCommandSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // `peerpool-bench`: benchmarks with their anchors, outside the shipped command.
        .executableTarget(
            name: "PeerpoolBenchmarks",
            dependencies: [
                "PeerpoolIdentity",
                "PeerpoolProtocol",
                "PeerpoolQUIC",
                "PeerpoolPool",
                "PeerpoolWire",
                "PeerpoolSupervisor",
                "PeerpoolCommandSupport",
                // The anchor of the supervisor's hop: a bare libzmq round trip, no peerpool code.
                "CZMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            // The iroh side of `peerpool-bench iroh`, run by the test venv's Python.
            exclude: ["Iroh/iroh_bench_peer.py"]
        ),
        // Helpers the test targets share: TestChild (the one way tests start a process) and the
        // fixtures on it (the peerpool executable, the Python interop peers), PEM files, bounded
        // waits. Scripts/: Python test servers any test target may start (iroh_relay.py:
        // PythonTestRelay).
        .target(
            name: "PeerpoolTestSupport", dependencies: ["PeerpoolErrors", "PeerpoolIdentity"], path: "Tests/PeerpoolTestSupport",
            exclude: ["Scripts"]
        ),
        .testTarget(name: "PeerpoolTestSupportTests", dependencies: ["PeerpoolTestSupport", "PeerpoolErrors"]),
        .testTarget(name: "PeerpoolErrorsTests", dependencies: ["PeerpoolErrors"]),
        .testTarget(name: "PeerpoolIdentityTests", dependencies: ["PeerpoolIdentity", "PeerpoolTestSupport"]),
        .testTarget(
            name: "PeerpoolDiscoveryTests",
            dependencies: [
                "PeerpoolDiscovery", "PeerpoolIdentity", "PeerpoolTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            exclude: ["Interop"]
        ),
        .testTarget(
            name: "PeerpoolRelayTests",
            dependencies: [
                "PeerpoolRelay", "PeerpoolDiscovery", "PeerpoolIdentity", "PeerpoolTestSupport",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "PeerpoolProtocolTests", dependencies: ["PeerpoolProtocol", "PeerpoolIdentity"]),
        .testTarget(name: "PeerpoolWireTests", dependencies: ["PeerpoolWire", "PeerpoolProtocol", "PeerpoolIdentity", "CZMQ"]),
        .testTarget(
            name: "PeerpoolClientTests",
            dependencies: [
                "PeerpoolClient", "PeerpoolWire", "PeerpoolProtocol", "PeerpoolIdentity", "PeerpoolTestSupport", "CZMQ",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "PeerpoolProcessTests", dependencies: ["PeerpoolProcess"]),
        .testTarget(
            name: "PeerpoolWorkerTests",
            dependencies: [
                "PeerpoolWorker", "PeerpoolWire", "PeerpoolPool", "PeerpoolQUIC", "PeerpoolIdentity", "PeerpoolTestSupport", "CZMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "PeerpoolSupervisorTests",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                "PeerpoolSupervisor", "PeerpoolWire", "PeerpoolPool", "PeerpoolQUIC", "PeerpoolIdentity",
                "PeerpoolTestSupport", "CZMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Interop"]
        ),
        .testTarget(
            name: "PeerpoolPoolTests",
            dependencies: [
                "PeerpoolRelay",
                "PeerpoolPool", "PeerpoolQUIC", "PeerpoolIdentity", "PeerpoolTestSupport",
                // The iroh tests also run the supervisor's workers against iroh peers.
                "PeerpoolSupervisor", "PeerpoolDiscovery",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Interop"]
        ),
        .testTarget(
            name: "PeerpoolQUICTests",
            dependencies: [
                "PeerpoolQUIC", "PeerpoolIdentity", "PeerpoolTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Interop"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
