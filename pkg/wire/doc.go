// Package wire owns sysmon's shared vocabulary: the sample, batch and
// protocol message types that flow from the collector through the transport
// into a sink, the codecs that put them on a WebSocket (binary "sysmon.v1" and
// JSON "sysmon.v1+json"), and the protocol's limits and close codes.
//
// It imports nothing of sysmon's own and only the standard library, so any
// backend can reuse it. SPEC.md beside this file is the normative
// description of the encoding; the test vectors under testdata/wire keep the
// two in step.
package wire
