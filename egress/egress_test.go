package egress_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/livehooks/livehooks/egress"
)

func TestDialerRefusesForbiddenAddresses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := egress.Dialer(nil, time.Second)
	for _, host := range []string{"127.0.0.1", "localhost", "169.254.169.254", "10.1.2.3", "192.168.0.1", "::1", "224.0.0.1", "100.64.0.1"} {
		_, err := closed.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		if err == nil || !egress.Refused(err) {
			t.Errorf("%s: %v, want a refusal", host, err)
		}
	}
	open := egress.Dialer([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, time.Second)
	c, err := open.DialContext(ctx, "tcp", net.JoinHostPort("localhost", port))
	if err != nil {
		t.Fatalf("allowed loopback: %v", err)
	}
	c.Close()
	if _, err := open.DialContext(ctx, "tcp", net.JoinHostPort("10.1.2.3", port)); !egress.Refused(err) {
		t.Fatalf("the allow-list opened more than it names: %v", err)
	}
}
