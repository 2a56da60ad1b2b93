// Package auth authenticates management API callers: static X-Auth-Token tokens and
// SDK-HMAC-SHA256 request signatures as the Huawei Cloud SDKs send them. It also
// parses credentials from flags and keeps the generated credentials file of a data dir.
package auth
