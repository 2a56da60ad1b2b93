// Package source turns what media servers report into recording signals for
// the recording machine. It holds what every adapter shares: the file
// pipeline (refuse paths outside the record directories, probe, upload, then
// FileDone), the on-demand recording question asked at publish, and the
// admission of streams (RejectUnknownStreams). The adapters themselves are in
// source/nginxrtmp, source/srs and source/mediamtx.
package source
