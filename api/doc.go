// Package api is the HTTP face of livehooks: the Huawei Cloud Live-compatible
// recording-callback management API, its extensions (delivery log, ingest,
// replay), health, readiness and the OpenAPI document. Every route is listed in
// routes.go; errors map to HTTP and Huawei error codes in errors.go.
package api
