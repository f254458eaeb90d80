// Package transport owns the WebSocket links between producer and consumer:
// the client that drains a producer's outbox over mutual TLS with
// acknowledgements, keepalive and reconnect, and the server that
// authenticates producers, enforces limits and hands batches to a Sink,
// acknowledging each only after the Sink has made it durable.
//
// It takes ready *tls.Config values and a small Sink interface, and imports
// no other sysmon package than wire.
package transport
