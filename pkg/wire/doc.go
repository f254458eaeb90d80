// Package wire owns sysmon's shared vocabulary: the sample, batch and
// protocol message types that flow from the collector through the transport
// into a sink, the codecs that put them on a WebSocket (binary "sysmon.v1" and
// JSON "sysmon.v1+json"), and the protocol's limits and close codes.
//
// It imports nothing of sysmon's own and only the standard library, so any
// backend can reuse it. SPEC.md beside this file is the normative
// description of the encoding; the test vectors under testdata/wire keep the
// two in step, and an independent Python decoder there is checked against
// this one.
//
// The binary codec is compact (about a tenth of the JSON bytes for a batch of
// real samples) because a batch interns its strings once, stores tables
// column by column, and codes each value as a varint delta against the same
// process in the previous sample. Every message is self-contained, since a
// producer spools encoded batches and replays them on later connections;
// what repeats across messages is left to permessage-deflate. Floats travel
// as thousandths (SPEC.md section 6.6), so a binary round trip rounds them.
//
// Both codecs validate a message before encoding it, so a producer never
// spools what a consumer would refuse, and after decoding it. Decoders never
// panic and check every length and count against the input and the limits
// before allocating.
package wire
