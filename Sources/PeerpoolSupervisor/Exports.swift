// The client lives in PeerpoolClient, which needs no QUIC; an embedded supervisor hands one out
// (`Supervisor.client()`), so code that imports the supervisor keeps seeing it.
@_exported import PeerpoolClient
