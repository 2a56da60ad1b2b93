package media

import (
	"bytes"
	"os"
	"testing"
)

// FuzzProbeTS feeds arbitrary bytes to the MPEG-TS walk (PAT, PMT, PES, SPS)
// that HLS probing runs on segments: no panic, a plausible picture size or
// none, and an error only from reading (never from the data itself).
func FuzzProbeTS(f *testing.F) {
	for _, name := range []string{"testdata/hls/seg0.ts", "testdata/hls/seg1.ts"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/3])
	}
	f.Add([]byte{0x47})
	f.Add(bytes.Repeat([]byte{0x47, 0x40, 0x00, 0x10}, 47))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := probeTS(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("in-memory data gave a read error: %v", err)
		}
		if res.width < 0 || res.height < 0 || (res.width > 0) != (res.height > 0) || res.width > 1<<16 || res.height > 1<<16 {
			t.Fatalf("implausible size %dx%d", res.width, res.height)
		}
	})
}
