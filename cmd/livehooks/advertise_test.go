package main

import "testing"

func TestCheckAdvertiseURL(t *testing.T) {
	for _, c := range []struct {
		url      string
		postgres bool
		ok       bool
	}{
		{"", false, true},
		{"", true, true},
		{"http://10.0.0.11:8080", true, true},
		{"https://node-a.internal/livehooks", true, true},
		{"http://10.0.0.11:8080", false, false}, // SQLite: one node
		{"10.0.0.11:8080", true, false},
		{"ftp://10.0.0.11", true, false},
		{"http://", true, false},
		{"http://10.0.0.11:8080/?a=1", true, false},
		{"http://user:pw@10.0.0.11:8080", true, false},
	} {
		if err := checkAdvertiseURL(c.url, c.postgres); (err == nil) != c.ok {
			t.Errorf("checkAdvertiseURL(%q, postgres=%v) = %v, want ok=%v", c.url, c.postgres, err, c.ok)
		}
	}
}
