package auth

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
)

func TestSignIsVerified(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := NewVerifier([]AccessKey{{AK: "AKTESTSIGN0000000001", SK: "sk0123456789abcdefghijklmnopqrstuvwxyzAB", Projects: []string{"p1"}}}, nil, fixedClock(now))
	r := httptest.NewRequest("GET", "http://livehooks.test/v1/p1/record/callbacks?limit=1", nil)
	if err := Sign(r, "AKTESTSIGN0000000001", "sk0123456789abcdefghijklmnopqrstuvwxyzAB", nil, now); err != nil {
		t.Fatal(err)
	}
	p, err := v.Authenticate(r, nil)
	if err != nil || p.Name != "AKTESTSIGN0000000001" {
		t.Fatalf("Authenticate = %v, %v", p, err)
	}
	r = httptest.NewRequest("GET", "http://livehooks.test/v1/p1/record/callbacks", nil)
	if err := Sign(r, "AKTESTSIGN0000000001", "wrong-secret-key-0123456789abcdefghijklmn", nil, now); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Authenticate(r, nil); livehooks.ErrorCode(err) != livehooks.EUNAUTHORIZED {
		t.Fatalf("wrong SK: err = %v, want unauthorized", err)
	}
}
