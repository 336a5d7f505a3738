package connectors

// ScanEnvelope lets the external tests see which envelopes the one-pass
// scanner takes.
var ScanEnvelope = scanEnvelope
