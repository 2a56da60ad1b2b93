package main

import "testing"

func TestInFlightText(t *testing.T) {
	for _, c := range []struct {
		ks   []float64
		want string
	}{
		{nil, ""},
		{[]float64{1}, "up to 1"},
		{[]float64{4, 4, 4}, "up to 4"},
		{[]float64{1, 1, 4}, "up to 1 / 1 / 4 (by node: they differ)"},
	} {
		if got := inFlightText(c.ks); got != c.want {
			t.Errorf("inFlightText(%v) = %q, want %q", c.ks, got, c.want)
		}
	}
}
