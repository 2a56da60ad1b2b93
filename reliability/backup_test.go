package reliability

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestBackupOfARunningProcessThenCrash: "livehooks backup", a process of its
// own, copies the store of a livehooks process that eight clients keep
// ingesting into; then that process is killed with SIGKILL and its data
// directory abandoned, as if the machine were lost. Restored from the copy
// into a new directory, livehooks delivers every event acknowledged before
// the backup started (some twice, as at-least-once allows), each stream in
// order.
func TestBackupOfARunningProcessThenCrash(t *testing.T) {
	l := newLedger()
	rc := newReceiver(t, l)
	lost := newServer(t, t.TempDir())
	lost.start()
	lost.createConfig("live", rc.url())
	ld := &load{base: lost.base, app: "live", clients: 8, streams: 4, ledger: l}
	ld.start()

	time.Sleep(1500 * time.Millisecond) // load builds up before and after the copy
	l.mu.Lock()
	before := make(map[int64]bool, len(l.acked))
	for seq := range l.acked {
		before[seq] = true
	}
	l.mu.Unlock()
	file := filepath.Join(t.TempDir(), "backup.db")
	began := time.Now()
	if out, err := exec.Command(binary, "backup", file, "--data-dir", lost.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	} else {
		t.Logf("%s(%s, under load)", out, time.Since(began).Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	lost.kill()
	ld.halt()
	if len(before) < 200 {
		t.Fatalf("only %d events acknowledged before the backup: the load was too light to mean much", len(before))
	}

	restored := newServer(t, t.TempDir())
	if out, err := exec.Command(binary, "restore", file, "--data-dir", restored.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	restored.start()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var missing []int64
		for _, seq := range l.missing() {
			if before[seq] {
				missing = append(missing, seq)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d events acknowledged before the backup were never delivered (LOST), e.g. %v", len(missing), len(before), missing[:min(len(missing), 20)])
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.checkOrder(t)
	t.Logf("%d events acknowledged before the backup, %d in all; all of the former delivered; %d duplicates", len(before), l.ackedCount(), l.duplicates())
	restored.stop()
}
