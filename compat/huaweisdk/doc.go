// Package huaweisdk checks that the official Huawei Cloud Go SDK works against
// livehooks unmodified: its tests build and start the livehooks binary and drive
// the recording-callback API through services/live/v1. It has no other code.
package huaweisdk
