package postgres

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livehooks/livehooks/aesgcm"
)

// TestCheckSealedAndLiveNodes: CheckSealed opens the store's keys with its
// cipher and names the row another cipher cannot open; LiveNodes lists the
// nodes whose heartbeat has not expired, and not one that left.
func TestCheckSealedAndLiveNodes(t *testing.T) {
	t.Parallel()
	url := testDatabase(t)
	db := openTest(t, url, Options{})
	if err := db.CheckSealed(ctx); err != nil {
		t.Fatalf("CheckSealed of an empty store: %v", err)
	}
	c := testConfig("p1", "live")
	c.Key = secretKey
	if err := db.CreateCallback(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckSealed(ctx); err != nil {
		t.Fatalf("CheckSealed with the same cipher: %v", err)
	}
	wrong, err := aesgcm.New(bytes.Repeat([]byte{8}, aesgcm.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	if err := openTest(t, url, Options{Cipher: wrong}).CheckSealed(ctx); err == nil || !strings.Contains(err.Error(), c.ID) || strings.Contains(err.Error(), secretKey) {
		t.Fatalf("CheckSealed with another cipher: %v", err)
	}

	for _, n := range []string{"n2", "n1"} {
		if _, _, err := db.Heartbeat(ctx, n, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if live, err := db.LiveNodes(ctx); err != nil || !reflect.DeepEqual(live, []string{"n1", "n2"}) {
		t.Fatalf("LiveNodes: %v, %v; want n1 and n2", live, err)
	}
	if err := db.Leave(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if live, err := db.LiveNodes(ctx); err != nil || !reflect.DeepEqual(live, []string{"n1"}) {
		t.Fatalf("LiveNodes after n2 left: %v, %v; want n1", live, err)
	}
}
