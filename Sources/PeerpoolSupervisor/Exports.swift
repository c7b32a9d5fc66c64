// The client lives in PeerpoolClient, which needs no QUIC; an embedded supervisor hands one out
// (`Supervisor.client()`), so code that imports the supervisor keeps seeing it. Process spawning
// and parent-death handling live in PeerpoolProcess, which the worker command uses too.
@_exported import PeerpoolClient
@_exported import PeerpoolProcess
