package reliability

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestDiskFull runs livehooks on a small tmpfs of its own and fills it while
// events stream in: ingest must answer 503 with the Huawei error body while
// the store cannot write, lose nothing it acknowledged before, and take
// events again once space returns. The fault is real (ENOSPC from the
// kernel under SQLite), so the test needs to mount a tmpfs (root); it skips
// where it cannot.
func TestDiskFull(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root): %v: %s", err, out)
	}
	l := newLedger()
	rc := newReceiver(t, l)
	srv := newServer(t, filepath.Join(mnt, "data"))
	// Unmount after the server is gone (cleanups run last-in first-out).
	t.Cleanup(func() {
		srv.kill()
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", mnt, err, out)
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	})
	srv.start()
	srv.createConfig("live", rc.url())

	var (
		unavailable, badBody atomic.Int64
		lastAccepted         atomic.Int64 // unix nanos
		firstBadBody         atomic.Value
	)
	ld := &load{base: srv.base, app: "live", clients: 4, streams: 5, ledger: l, pause: 5 * time.Millisecond,
		onAnswer: func(a ingestAnswer) {
			switch a.status {
			case http.StatusAccepted:
				lastAccepted.Store(time.Now().UnixNano())
			case http.StatusServiceUnavailable:
				unavailable.Add(1)
				var body struct {
					Code string `json:"error_code"`
					Msg  string `json:"error_msg"`
				}
				if err := json.Unmarshal(a.body, &body); err != nil || body.Code != "LIVE.100011503" || body.Msg == "" {
					if badBody.Add(1) == 1 {
						firstBadBody.Store(string(a.body))
					}
				}
			}
		}}
	ld.start()
	defer ld.halt()
	time.Sleep(1500 * time.Millisecond)
	before := l.ackedCount()

	filler := filepath.Join(mnt, "filler")
	if err := fill(filler); err != nil {
		t.Fatalf("fill the tmpfs: %v", err)
	}
	t.Logf("disk full after %d acknowledged events", before)
	waitFor(t, 30*time.Second, "ingest to answer 503 on a full disk", func() bool { return unavailable.Load() >= 20 })
	full := time.Now()
	time.Sleep(time.Second) // stay full for a while
	if srv.cmd == nil || !alive(srv) {
		t.Fatalf("livehooks died with the disk full")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	waitFor(t, 30*time.Second, "ingest to accept events again once space returned", func() bool {
		return lastAccepted.Load() > freed.Add(100*time.Millisecond).UnixNano()
	})
	t.Logf("503 for %s (%d answers); accepting again %s after space returned",
		freed.Sub(full).Round(time.Millisecond), unavailable.Load(), time.Since(freed).Round(time.Millisecond))
	time.Sleep(time.Second)
	ld.halt()

	// The 503s must come from the real fault: SQLite's SQLITE_FULL.
	if log := srv.log.tail(1 << 20); !strings.Contains(log, "disk is full") {
		t.Errorf("livehooks logged no \"disk is full\" store error: the 503s came from something else")
	}
	if n := badBody.Load(); n > 0 {
		t.Errorf("%d 503 answers without the Huawei error body (error_code LIVE.100011503), e.g. %v", n, firstBadBody.Load())
	}
	if ld.errs.Load() > 0 {
		t.Errorf("%d ingest requests got no HTTP answer (first: %v): livehooks must answer 503, not drop the request", ld.errs.Load(), ld.firstErr.Load())
	}
	l.waitDelivered(t, 60*time.Second)
	l.checkOrder(t)
	t.Logf("%d acknowledged events (%d before the disk filled) all delivered; %d duplicates; statuses other than 202: %s",
		l.ackedCount(), before, l.duplicates(), ld.statuses())
	srv.stop()
}

// fill writes path until the file system has no space left.
func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					break
				}
				return err
			}
		}
	}
	return f.Sync()
}

func alive(s *server) bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
