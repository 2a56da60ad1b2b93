package media_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/media"
)

// flvFile builds FLV files tag by tag.
type flvFile struct{ b []byte }

func newFLV() *flvFile {
	return &flvFile{b: []byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")}
}

func (f *flvFile) tag(typ byte, ts uint32, data []byte) *flvFile {
	n := len(data)
	f.b = append(f.b, typ, byte(n>>16), byte(n>>8), byte(n), byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
	f.b = append(f.b, data...)
	f.b = binary.BigEndian.AppendUint32(f.b, uint32(11+n))
	return f
}

func (f *flvFile) probe(t *testing.T) media.Info {
	t.Helper()
	info, err := media.ProbeFLV(bytes.NewReader(f.b), int64(len(f.b)))
	if err != nil {
		t.Fatalf("ProbeFLV: %v", err)
	}
	if info.Format != livehooks.FormatFLV || info.Size != int64(len(f.b)) {
		t.Errorf("format %q size %d, want FLV %d", info.Format, info.Size, len(f.b))
	}
	return info
}

var (
	aacConfig = []byte{0xaf, 0x00, 0x12, 0x08}
	aacFrame  = []byte{0xaf, 0x01, 0x21, 0x10, 0x04}
	avcFrame  = []byte{0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41}
	avcEOS    = []byte{0x17, 0x02, 0, 0, 0}
)

// avcSequenceHeader returns video.flv's AVC sequence header tag body
// (0x17 0x00 cts[3] + AVCDecoderConfigurationRecord, 320x240).
func avcSequenceHeader(t *testing.T) []byte {
	t.Helper()
	b := mustRead(t, "testdata/video.flv")
	// The tag at offset 296: 11-byte header, 42-byte body.
	if b[296] != 9 || b[296+11] != 0x17 || b[296+12] != 0 {
		t.Fatal("video.flv: no AVC sequence header at offset 296")
	}
	return b[296+11 : 296+11+42]
}

// amf0 encodes values for onMetaData: string keys alternate with values.
func onMetaData(prefix []byte, props ...any) []byte {
	b := append([]byte(nil), prefix...)
	b = append(b, 0x02, 0, 10)
	b = append(b, "onMetaData"...)
	b = append(b, 0x08, 0, 0, 0, byte(len(props)/2))
	for i := 0; i+1 < len(props); i += 2 {
		k := props[i].(string)
		b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
		b = append(b, k...)
		switch v := props[i+1].(type) {
		case float64:
			b = append(b, 0x00)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
		case string:
			b = append(b, 0x02)
			b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
			b = append(b, v...)
		case []byte: // raw AMF0 value
			b = append(b, v...)
		}
	}
	return append(b, 0, 0, 0x09)
}

func TestProbeFLVManyTags(t *testing.T) {
	t.Parallel()
	f := newFLV().tag(9, 0, avcSequenceHeader(t)).tag(8, 0, aacConfig)
	big := append(append([]byte(nil), avcFrame...), make([]byte, 200<<10)...) // larger than the read window
	for i := range uint32(100000) {
		if i%1000 == 0 {
			f.tag(9, i*40, big)
		} else {
			f.tag(9, i*40, avcFrame)
		}
		f.tag(8, i*40+3, aacFrame)
	}
	info := f.probe(t)
	want := media.Info{Format: livehooks.FormatFLV, Size: int64(len(f.b)), Duration: (99999*40 + 3) * time.Millisecond, Width: 320, Height: 240, HasVideo: true}
	if info != want {
		t.Errorf("got  %+v\nwant %+v", info, want)
	}
}

func TestProbeFLV(t *testing.T) {
	t.Parallel()
	seq := avcSequenceHeader(t)
	// {times: [0, 1.5]}: an object holding a strict array, as ffmpeg's
	// -flvflags add_keyframe_index writes.
	keyframes := []byte{0x03, 0, 5, 't', 'i', 'm', 'e', 's', 0x0a, 0, 0, 0, 2, 0x00}
	keyframes = binary.BigEndian.AppendUint64(keyframes, math.Float64bits(0))
	keyframes = append(keyframes, 0x00)
	keyframes = binary.BigEndian.AppendUint64(keyframes, math.Float64bits(1.5))
	keyframes = append(keyframes, 0, 0, 0x09)
	sorenson := []byte{0x22, 0, 0, 0x84, 0}
	tests := []struct {
		name string
		flv  *flvFile
		want media.Info
	}{
		{"header only", newFLV(), media.Info{}},
		{"header without PreviousTagSize0", &flvFile{b: []byte("FLV\x01\x05\x00\x00\x00\x09")}, media.Info{}},
		{"truncated tag header", newFLV().tag(8, 0, aacFrame).tag(8, 500, aacFrame).tag(9, 900, avcFrame), media.Info{Duration: 500 * time.Millisecond}},
		{"audio only", newFLV().tag(8, 0, aacConfig).tag(8, 100, aacFrame).tag(8, 1100, aacFrame), media.Info{Duration: time.Second}},
		{"sequence headers only", newFLV().tag(9, 0, seq).tag(8, 0, aacConfig), media.Info{}},
		// What ffmpeg writes for an empty video stream: end of sequence at INT32_MAX.
		{"end of sequence ignored", newFLV().tag(9, 0, seq).tag(9, 0, avcFrame).tag(9, 40, avcFrame).tag(9, 0x7fffffff, avcEOS),
			media.Info{Duration: 40 * time.Millisecond, Width: 320, Height: 240, HasVideo: true}},
		{"extended timestamps", newFLV().tag(9, 0, seq).tag(9, 1<<24+5, avcFrame).tag(9, 1<<24+2005, avcFrame),
			media.Info{Duration: 2 * time.Second, Width: 320, Height: 240, HasVideo: true}},
		{"timestamps out of order", newFLV().tag(9, 500, avcFrame).tag(8, 400, aacFrame).tag(9, 1500, avcFrame).tag(8, 1450, aacFrame),
			media.Info{Duration: 1100 * time.Millisecond, HasVideo: true}},
		{"size from onMetaData without SPS", newFLV().tag(18, 0, onMetaData(nil, "duration", 9.0, "width", 640.0, "height", 480.0)).tag(9, 0, sorenson).tag(9, 2000, sorenson),
			media.Info{Duration: 2 * time.Second, Width: 640, Height: 480, HasVideo: true}},
		{"SPS wins over onMetaData", newFLV().tag(18, 0, onMetaData(nil, "width", 640.0, "height", 480.0)).tag(9, 0, seq).tag(9, 0, avcFrame).tag(9, 40, avcFrame),
			media.Info{Duration: 40 * time.Millisecond, Width: 320, Height: 240, HasVideo: true}},
		{"onMetaData duration with one frame", newFLV().tag(18, 0, onMetaData(nil, "duration", 12.5)).tag(9, 0, avcFrame),
			media.Info{Duration: 12500 * time.Millisecond, HasVideo: true}},
		{"onMetaData ignored without media", newFLV().tag(18, 0, onMetaData(nil, "duration", 12.5, "width", 640.0, "height", 480.0)),
			media.Info{}},
		{"@setDataFrame and nested values", newFLV().tag(18, 0, onMetaData([]byte("\x02\x00\x0d@setDataFrame"),
			"encoder", "Lavf59",
			"keyframes", keyframes,
			"stereo", []byte{0x01, 0x01},
			"nothing", []byte{0x05},
			"width", 1280.0, "height", 720.0)).tag(9, 0, sorenson).tag(9, 40, sorenson),
			media.Info{Duration: 40 * time.Millisecond, Width: 1280, Height: 720, HasVideo: true}},
		{"onMetaData width without height ignored", newFLV().tag(18, 0, onMetaData(nil, "width", 16.0)).tag(9, 0, sorenson),
			media.Info{HasVideo: true}},
		{"absurd onMetaData size ignored", newFLV().tag(18, 0, onMetaData(nil, "width", 1e12, "height", -5.0)).tag(9, 0, sorenson),
			media.Info{HasVideo: true}},
		{"enhanced RTMP avc1", newFLV().
			tag(9, 0, append([]byte{0x90, 'a', 'v', 'c', '1'}, seq[5:]...)).        // KeyFrame|SequenceStart
			tag(9, 0, []byte{0x91, 'a', 'v', 'c', '1', 0, 0, 0, 0, 0, 0, 1, 0x65}). // KeyFrame|CodedFrames
			tag(9, 40, []byte{0xa3, 'a', 'v', 'c', '1', 0, 0, 0, 1, 0x41}),         // InterFrame|CodedFramesX
			media.Info{Duration: 40 * time.Millisecond, Width: 320, Height: 240, HasVideo: true}},
		{"enhanced RTMP hvc1 frames", newFLV().tag(9, 0, []byte{0x90, 'h', 'v', 'c', '1', 1}).tag(9, 0, []byte{0x93, 'h', 'v', 'c', '1'}).tag(9, 40, []byte{0xa3, 'h', 'v', 'c', '1'}),
			media.Info{Duration: 40 * time.Millisecond, HasVideo: true}},
		{"command frames ignored", newFLV().tag(9, 0, []byte{0x57, 0x00}).tag(9, 5000, []byte{0x57, 0x01}), media.Info{}},
		{"broken SPS", newFLV().tag(9, 0, append(append([]byte(nil), seq[:13]...), 0xff, 0xff)).tag(9, 0, avcFrame).tag(9, 40, avcFrame),
			media.Info{Duration: 40 * time.Millisecond, HasVideo: true}},
		{"empty tags", newFLV().tag(9, 0, nil).tag(8, 100, nil), media.Info{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := tt.flv.b
			if tt.name == "truncated tag header" {
				b = b[:len(b)-len(avcFrame)-4-6] // cut inside the last tag's header
			}
			info, err := media.ProbeFLV(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Format, want.Size = livehooks.FormatFLV, int64(len(b))
			if info != want {
				t.Errorf("got  %+v\nwant %+v", info, want)
			}
		})
	}
}
