package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
)

// errStalled is the cause of an upload ended by its stall watch.
var errStalled = errors.New("objstore: upload stalled")

// putOptions are the options of every PUT: streamed parts of PartSize, and
// progress told of every byte read from the file.
func putOptions(contentType string, progress io.Reader) minio.PutObjectOptions {
	return minio.PutObjectOptions{ContentType: contentType, PartSize: PartSize, NumThreads: PartThreads, Progress: progress}
}

// stallWatch cancels an upload's context when the upload reads nothing of
// its file for a while. minio-go reads the file as the connection takes the
// body, so a peer that stops reading stops the reads too. It is the
// upload's Progress: minio-go calls Read with what it read.
type stallWatch struct {
	last atomic.Int64 // unix nanoseconds of the last read
	done chan struct{}
}

func watchStall(ctx context.Context, limit time.Duration) (context.Context, *stallWatch) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &stallWatch{done: make(chan struct{})}
	w.last.Store(time.Now().UnixNano())
	go func() {
		defer cancel(nil)
		t := time.NewTicker(max(limit/4, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				if idle := now.Sub(time.Unix(0, w.last.Load())); idle > limit {
					cancel(fmt.Errorf("%w: nothing sent for %s", errStalled, idle.Round(time.Second)))
					return
				}
			}
		}
	}()
	return ctx, w
}

// Read notes progress.
func (w *stallWatch) Read(p []byte) (int, error) {
	w.last.Store(time.Now().UnixNano())
	return len(p), nil
}

func (w *stallWatch) stop() { close(w.done) }
