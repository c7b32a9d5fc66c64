// fastn's value types (stream protocols, headers, peer addresses, the stream provider protocols)
// live in PeerpoolProtocol so that code without QUIC can use them; code that imports the pool
// keeps seeing them as before.
@_exported import PeerpoolProtocol
