package media_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/media"
)

// Hand-built ISO BMFF boxes (ISO/IEC 14496-12 field layouts, version 0).

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func box(typ string, parts ...[]byte) []byte {
	b := u32(0)
	b = append(b, typ...)
	for _, p := range parts {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func fullBox(typ string, flags uint32, parts ...[]byte) []byte {
	return box(typ, append([][]byte{u32(flags & 0xffffff)}, parts...)...)
}

var identity = bytes.Join([][]byte{u32(0x10000), u32(0), u32(0), u32(0), u32(0x10000), u32(0), u32(0), u32(0), u32(0x40000000)}, nil)

func mvhd(timescale, duration uint32) []byte {
	return fullBox("mvhd", 0, u32(0), u32(0), u32(timescale), u32(duration), u32(0x10000), u16(0x100), make([]byte, 10), identity, make([]byte, 24), u32(3))
}

func tkhd(id uint32, width, height uint16) []byte {
	return fullBox("tkhd", 3, u32(0), u32(0), u32(id), u32(0), u32(0), make([]byte, 8), u16(0), u16(0), u16(0), u16(0), identity,
		u32(uint32(width)<<16), u32(uint32(height)<<16))
}

func mdhd(timescale, duration uint32) []byte {
	return fullBox("mdhd", 0, u32(0), u32(0), u32(timescale), u32(duration), u16(0x55c4), u16(0))
}

func hdlr(handler string) []byte {
	return fullBox("hdlr", 0, u32(0), []byte(handler), make([]byte, 12), []byte("\x00"))
}

func trak(id uint32, handler string, timescale, duration uint32, width, height uint16) []byte {
	return box("trak", tkhd(id, width, height), box("mdia", mdhd(timescale, duration), hdlr(handler)))
}

func trex(id, defaultDuration uint32) []byte {
	return fullBox("trex", 0, u32(id), u32(1), u32(defaultDuration), u32(0), u32(0))
}

func tfhd(id uint32, defaultDuration uint32) []byte {
	if defaultDuration == 0 {
		return fullBox("tfhd", 0x020000, u32(id))
	}
	return fullBox("tfhd", 0x020008, u32(id), u32(defaultDuration))
}

// trun writes a run of count samples; with durations, each gets one.
func trun(count uint32, durations ...uint32) []byte {
	if len(durations) == 0 {
		return fullBox("trun", 0x000001, u32(count), u32(0))
	}
	parts := [][]byte{u32(count), u32(0)}
	for _, d := range durations {
		parts = append(parts, u32(d), u32(100)) // duration, size
	}
	return fullBox("trun", 0x000301, parts...)
}

func moof(id uint32, defaultDuration uint32, run []byte) []byte {
	return box("moof", fullBox("mfhd", 0, u32(1)), box("traf", tfhd(id, defaultDuration), run))
}

var ftyp = box("ftyp", []byte("isom"), u32(0x200), []byte("isomiso2avc1mp41"))

func probeMP4(t *testing.T, parts ...[]byte) (media.Info, error) {
	t.Helper()
	b := bytes.Join(parts, nil)
	info, err := media.ProbeMP4(bytes.NewReader(b))
	if err == nil && (info.Format != livehooks.FormatMP4 || info.Size != int64(len(b))) {
		t.Errorf("format %q size %d, want MP4 %d", info.Format, info.Size, len(b))
	}
	return info, err
}

func TestProbeMP4(t *testing.T) {
	t.Parallel()
	video := trak(1, "vide", 90000, 0, 1280, 720)
	audio := trak(2, "soun", 48000, 0, 0, 0)
	mvex := box("mvex", trex(1, 3000), trex(2, 1024))
	tests := []struct {
		name  string
		parts [][]byte
		want  media.Info
	}{
		{"movie duration", [][]byte{ftyp, box("moov", mvhd(1000, 5500), trak(1, "vide", 90000, 90000*5, 640, 360))},
			media.Info{Duration: 5500 * time.Millisecond, Width: 640, Height: 360, HasVideo: true}},
		{"unknown movie duration: longest track", [][]byte{ftyp, box("moov", mvhd(1000, 0xffffffff), trak(1, "vide", 90000, 90000*5, 640, 360), trak(2, "soun", 48000, 48000*6, 0, 0))},
			media.Info{Duration: 6 * time.Second, Width: 640, Height: 360, HasVideo: true}},
		{"audio only", [][]byte{ftyp, box("moov", mvhd(1000, 3000), audio)}, media.Info{Duration: 3 * time.Second}},
		{"fragments with trex defaults", [][]byte{ftyp, box("moov", mvhd(1000, 0), video, audio, mvex), moof(1, 0, trun(60)), moof(2, 0, trun(94)), moof(1, 0, trun(60))},
			media.Info{Duration: 4 * time.Second, Width: 1280, Height: 720, HasVideo: true}},
		{"fragments with tfhd defaults", [][]byte{ftyp, box("moov", mvhd(1000, 0), video, mvex), moof(1, 9000, trun(20))},
			media.Info{Duration: 2 * time.Second, Width: 1280, Height: 720, HasVideo: true}},
		{"fragments with sample durations", [][]byte{ftyp, box("moov", mvhd(1000, 0), video, mvex), moof(1, 9000, trun(3, 90000, 45000, 45000))},
			media.Info{Duration: 2 * time.Second, Width: 1280, Height: 720, HasVideo: true}},
		{"fragment of an unknown track: fall back to mehd", [][]byte{ftyp, box("moov", mvhd(1000, 0), video, box("mvex", fullBox("mehd", 0, u32(7000)), trex(1, 3000))), moof(9, 0, trun(60))},
			media.Info{Duration: 7 * time.Second, Width: 1280, Height: 720, HasVideo: true}},
		{"truncated mdat at the end", [][]byte{ftyp, box("moov", mvhd(1000, 1000), video), u32(1 << 30), []byte("mdat"), make([]byte, 100)},
			media.Info{Duration: time.Second, Width: 1280, Height: 720, HasVideo: true}},
		{"truncated last fragment", [][]byte{ftyp, box("moov", mvhd(1000, 0), video, mvex), moof(1, 9000, trun(20)), moof(1, 9000, trun(20))[:40]},
			media.Info{Duration: 2 * time.Second, Width: 1280, Height: 720, HasVideo: true}},
		{"large-size mdat", [][]byte{ftyp, u32(1), []byte("mdat"), u32(0), u32(24), make([]byte, 8), box("moov", mvhd(1000, 1000), video)},
			media.Info{Duration: time.Second, Width: 1280, Height: 720, HasVideo: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			info, err := probeMP4(t, tt.parts...)
			if err != nil {
				t.Fatal(err)
			}
			info.Format, info.Size = "", 0
			if info != tt.want {
				t.Errorf("got  %+v\nwant %+v", info, tt.want)
			}
		})
	}
}

func TestProbeMP4Corrupt(t *testing.T) {
	t.Parallel()
	video := trak(1, "vide", 90000, 0, 1280, 720)
	mvex := box("mvex", trex(1, 3000))
	moov := box("moov", mvhd(1000, 0), video, mvex)
	// A trun claiming 2^32-1 samples without per-sample fields: go-mp4
	// would allocate an entry for each.
	hugeRun := fullBox("trun", 0, u32(0xffffffff))
	tests := []struct {
		name  string
		parts [][]byte
		want  error
	}{
		{"no moov", [][]byte{ftyp, box("mdat", make([]byte, 64))}, media.ErrCorrupt},
		{"two moov", [][]byte{ftyp, moov, moov}, media.ErrCorrupt},
		{"moov overruns the file", [][]byte{ftyp, moov[:len(moov)-10]}, media.ErrCorrupt},
		{"child overruns moov", [][]byte{ftyp, box("moov", mvhd(1000, 0)[:50])}, media.ErrCorrupt},
		{"box smaller than its header", [][]byte{ftyp, u32(3), []byte("free")}, media.ErrCorrupt},
		{"huge empty trun: implausible duration", [][]byte{ftyp, box("moov", mvhd(1000, 0), trak(1, "vide", 1, 0, 1, 1), box("mvex", trex(1, 3000))), moof(1, 0, hugeRun)}, media.ErrCorrupt},
		{"trun entries overrun", [][]byte{ftyp, moov, moof(1, 0, fullBox("trun", 0x100, u32(1000), u32(1)))}, media.ErrCorrupt},
		{"oversized mvhd", [][]byte{ftyp, box("moov", box("mvhd", make([]byte, 2<<20)))}, media.ErrCorrupt},
		{"mvhd of the wrong size", [][]byte{ftyp, box("moov", box("mvhd", make([]byte, 12)))}, media.ErrCorrupt},
		{"tracks with one id", [][]byte{ftyp, box("moov", mvhd(1000, 1000), video, video)}, media.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if info, err := probeMP4(t, tt.parts...); !errors.Is(err, tt.want) {
				t.Errorf("ProbeMP4 = %+v, %v; want %v", info, err, tt.want)
			}
		})
	}
}

func TestProbeMP4HugeTrunAllocatesLittle(t *testing.T) {
	b := bytes.Join([][]byte{ftyp, box("moov", mvhd(1000, 0), trak(1, "vide", 1000000, 0, 1, 1), box("mvex", trex(1, 1))),
		moof(1, 0, fullBox("trun", 0, u32(0xffffffff)))}, nil)
	allocs := testing.AllocsPerRun(3, func() {
		info, err := media.ProbeMP4(bytes.NewReader(b))
		if err != nil || info.Duration != 4294967295*time.Microsecond {
			t.Errorf("ProbeMP4 = %+v, %v", info, err)
		}
	})
	if allocs > 1000 {
		t.Errorf("%v allocations", allocs)
	}
}
