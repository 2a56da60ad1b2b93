package main

import (
	"os"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "500M": 500 << 20, "50G": 50 << 30, "2GiB": 2 << 30, "1t": 1 << 40, "3KB": 3 << 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "G", "1.5G", "1P", "99999999999T", "lots"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("%q taken", bad)
		}
	}
}

func TestDefaultPublicURL(t *testing.T) {
	host, _ := os.Hostname()
	for _, c := range []struct {
		listen   string
		tls      bool
		want     string
		wildcard bool
	}{
		{"127.0.0.1:8080", false, "http://127.0.0.1:8080", false},
		{"[::1]:8443", true, "https://[::1]:8443", false},
		{"lh.example.com:80", false, "http://lh.example.com:80", false},
		{":8080", false, "http://" + host + ":8080", true},
		{"0.0.0.0:8080", false, "http://" + host + ":8080", true},
		{"[::]:8080", false, "http://" + host + ":8080", true},
	} {
		if got, wildcard := defaultPublicURL(c.listen, c.tls); got != c.want || wildcard != c.wildcard {
			t.Errorf("%s: %s %v, want %s %v", c.listen, got, wildcard, c.want, c.wildcard)
		}
	}
}
