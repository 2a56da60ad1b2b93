package groupcommit

import (
	"context"
	"time"
)

// CommitsAlone makes call, which submits one operation to c (whose Run is
// not running), and reports whether the operation was queued to commit
// alone rather than in one of the Parallel queues. It answers the operation.
func CommitsAlone(c *Committer, call func(ctx context.Context) error) bool {
	done := make(chan struct{})
	go func() { _ = call(context.Background()); close(done) }()
	for {
		queues := append([]chan *op{c.ops}, c.queues...)
		for i, q := range queues {
			select {
			case o := <-q:
				o.done <- opResult{}
				<-done
				return i == 0
			default:
			}
		}
		time.Sleep(time.Millisecond)
	}
}
