package media

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// TestProbeTSClockWrap shifts every timestamp of a segment so that the
// 33-bit PTS clock wraps to zero in its middle: the duration stays the same.
func TestProbeTSClockWrap(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/hls/seg0.ts")
	if err != nil {
		t.Fatal(err)
	}
	before, err := ProbeTS(bytes.NewReader(b), int64(len(b)))
	if err != nil || before.Duration != time.Second {
		t.Fatalf("unshifted: %+v, %v; want 1s", before, err)
	}
	first := ^uint64(0)
	shifted := 0
	for pass := range 2 {
		for off := 0; off+tsPacketSize <= len(b); off += tsPacketSize {
			pkt := b[off : off+tsPacketSize]
			if pkt[1]&0x40 == 0 || pkt[3]>>4&1 == 0 {
				continue
			}
			p := 4
			if pkt[3]>>4&2 != 0 {
				p += 1 + int(pkt[4])
			}
			if p >= tsPacketSize {
				continue
			}
			pts, ok := pesPTS(pkt[p:])
			if !ok {
				continue
			}
			if pass == 0 {
				first = min(first, pts)
				continue
			}
			// The first timestamp lands half a second before the wrap.
			putPTS(pkt[p+9:], (pts-first+ptsWrap-ptsClock/2)%ptsWrap)
			shifted++
		}
	}
	if shifted == 0 {
		t.Fatal("no timestamps found")
	}
	after, err := ProbeTS(bytes.NewReader(b), int64(len(b)))
	if err != nil || after != before {
		t.Errorf("across the wrap: %+v, %v; want %+v", after, err, before)
	}
}

// putPTS writes a PTS in the 5-byte form pesPTS reads, keeping the prefix
// bits of b[0].
func putPTS(b []byte, pts uint64) {
	b[0] = b[0]&0xf0 | byte(pts>>29)&0x0e | 1
	b[1] = byte(pts >> 22)
	b[2] = byte(pts>>14)&0xfe | 1
	b[3] = byte(pts >> 7)
	b[4] = byte(pts<<1) | 1
}
