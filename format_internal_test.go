package livehooks

import (
	"encoding/json"
	"testing"
	"time"
)

// The callback body's fast paths must write what encoding/json and
// time.Format write, byte for byte: receivers verify signatures over it.

func TestAppendTimeMatchesFormat(t *testing.T) {
	check := func(tm time.Time) {
		t.Helper()
		if got, want := FormatTime(tm), tm.UTC().Format(TimeFormat); got != want {
			t.Fatalf("FormatTime(%d) = %q, want %q", tm.Unix(), got, want)
		}
	}
	// Every day 1970–9999 at a second that walks through the clock, the
	// edges of the fast path, and times outside it.
	for sec := int64(0); sec < maxTimeFormatUnix; sec += 86400 + 3607 {
		check(time.Unix(sec, 0))
	}
	for _, sec := range []int64{-1, 0, 1, 951782400, 951868799, 4107542400, maxTimeFormatUnix - 1, maxTimeFormatUnix, -62135596800} {
		check(time.Unix(sec, 0))
		check(time.Unix(sec, 999999999).In(time.FixedZone("x", -5*3600)))
	}
	check(time.Time{})
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "cam1", `a"b`, `a\b`, "<&>", "\x00\x1f\x7f", "é", "\u2028", "\xff", "https://x/y?a=1&b=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("appendJSONString(%q) = %q, want %q", s, got[1:], want)
		}
	})
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(0))
	f.Add(int64(1583676745))
	f.Add(int64(-1))
	f.Add(int64(maxTimeFormatUnix))
	f.Fuzz(func(t *testing.T, sec int64) {
		tm := time.Unix(sec, 0)
		if got, want := string(AppendTime(nil, tm)), tm.UTC().Format(TimeFormat); got != want {
			t.Fatalf("AppendTime(%d) = %q, want %q", sec, got, want)
		}
	})
}
