// Package egress guards the connections livehooks opens to addresses users
// give it (callback URLs, on-demand URLs, storage endpoints): loopback,
// private, link-local (cloud metadata), multicast and other non-global
// addresses are refused at dial time, after DNS resolution, unless an
// operator allow-list opens them.
package egress

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"code.dny.dev/ssrf"
)

// MaxResponseHeaderBytes bounds the headers livehooks accepts in an answer
// from a user-given address (Go's default is 10 MiB): set it as the
// http.Transport's MaxResponseHeaderBytes, so that a receiver cannot make
// livehooks hold megabytes per request. Real answers carry a few hundred
// bytes of headers; S3 answers stay under 8 KiB.
const MaxResponseHeaderBytes = 32 << 10

// Dialer returns a dialer that refuses forbidden destinations. allow opens
// networks (e.g. 127.0.0.0/8 for tests and private deployments). Use it with
// an http.Transport whose Proxy is nil: a proxy would dial for us.
func Dialer(allow []netip.Prefix, connectTimeout time.Duration) *net.Dialer {
	var v4, v6 []netip.Prefix
	for _, p := range allow {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	guard := ssrf.New(ssrf.WithAnyPort(), ssrf.WithAllowedV4Prefixes(v4...), ssrf.WithAllowedV6Prefixes(v6...))
	return &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second, Control: guard.Safe}
}

// Refused reports whether err is a refusal of the guard (retrying cannot help).
func Refused(err error) bool {
	return errors.Is(err, ssrf.ErrProhibitedIP) || errors.Is(err, ssrf.ErrProhibitedPort) || errors.Is(err, ssrf.ErrProhibitedNetwork)
}
