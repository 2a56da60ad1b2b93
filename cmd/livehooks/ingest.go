package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/groupcommit"
	"github.com/livehooks/livehooks/metrics"
)

// ingester acknowledges events once the committer has made them durable.
type ingester struct {
	committer *groupcommit.Committer
	metrics   *metrics.Metrics
	source    string
}

func (i *ingester) Ingest(ctx context.Context, events []*livehooks.Event) error {
	now := time.Now().UTC()
	for _, e := range events {
		if e.ID == "" {
			e.ID = randomID()
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		if e.TaskID == "" {
			e.TaskID = randomID()
		}
		if e.JobID == "" && e.Type.HasJob() {
			e.JobID = randomID()
		}
	}
	if _, err := i.committer.Enqueue(ctx, events); err != nil {
		return err
	}
	i.metrics.Ingested(i.source, len(events))
	return nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
