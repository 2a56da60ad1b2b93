package api

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/aesgcm"
	"github.com/livehooks/livehooks/store/sqlite"
)

// TestPagesLookAtABoundedWindow: with a small window, a rare filter gives
// short pages that still lead, page after page, to every match in order,
// and a time range is exactly its deliveries.
func TestPagesLookAtABoundedWindow(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c, _ := aesgcm.New(key)
	db, err := sqlite.Open(context.Background(), sqlite.Options{Path: t.TempDir() + "/log.db", Cipher: c, Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := &livehooks.CallbackConfig{ID: "0123456789abcdef0123456789abcdef", ProjectID: "p", PublishDomain: "push.example.com", App: "live",
		NotifyCallbackURL: "https://hooks.example.com/", NotifyEventSubscription: livehooks.EventTypes, SignType: livehooks.SignHMACSHA256}
	if err := db.CreateCallback(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 20 {
		stream := "b"
		if i%4 == 0 {
			stream = "a" // ids 1, 5, 9, 13, 17
		}
		err := db.Write(context.Background(), func(tx livehooks.OutboxTx) error {
			_, err := tx.Enqueue(context.Background(), "n", t0.Add(time.Duration(i)*time.Second), []*livehooks.Event{{
				ID: fmt.Sprintf("%032x", i+1), ProjectID: "p", Type: livehooks.RecordStart, PublishDomain: "push.example.com", App: "live", Stream: stream,
			}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{outbox: db}
	defer func(w int64) { scanWindow = w }(scanWindow)
	scanWindow = 3

	walk := func(f livehooks.DeliveryFilter) (ids []int64, pages int) {
		t.Helper()
		f.ProjectID, f.Limit, f.NoTotal = "p", 2, true
		for {
			ds, next, err := s.pageDeliveries(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, d := range ds {
				ids = append(ids, d.ID)
			}
			if next == 0 {
				return ids, pages
			}
			f.BeforeID = next
		}
	}
	ids, pages := walk(livehooks.DeliveryFilter{Stream: "a"})
	if fmt.Sprint(ids) != "[17 13 9 5 1]" || pages < 5 {
		t.Errorf("stream a: %v in %d pages", ids, pages)
	}
	ids, _ = walk(livehooks.DeliveryFilter{Since: t0.Add(5 * time.Second), Until: t0.Add(9 * time.Second)})
	if fmt.Sprint(ids) != "[9 8 7 6]" {
		t.Errorf("time range: %v", ids)
	}
	ids, _ = walk(livehooks.DeliveryFilter{Since: t0.Add(time.Hour)})
	if len(ids) != 0 {
		t.Errorf("after the last: %v", ids)
	}
	ids, _ = walk(livehooks.DeliveryFilter{Until: t0.Add(2 * time.Second)})
	if fmt.Sprint(ids) != "[2 1]" {
		t.Errorf("until: %v", ids)
	}
}
