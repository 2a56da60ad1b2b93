package livehooks_test

import (
	"testing"

	"github.com/livehooks/livehooks"
)

func TestStreamKeyValidate(t *testing.T) {
	t.Parallel()
	ok := livehooks.StreamKey{ProjectID: "p", PublishDomain: "push.example.com", App: "live", Stream: "cam1"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*livehooks.StreamKey)
	}{
		{"no project", func(k *livehooks.StreamKey) { k.ProjectID = "" }},
		{"bad domain", func(k *livehooks.StreamKey) { k.PublishDomain = "a b" }},
		{"app *", func(k *livehooks.StreamKey) { k.App = "*" }},
		{"app .", func(k *livehooks.StreamKey) { k.App = "." }},
		{"app ..", func(k *livehooks.StreamKey) { k.App = ".." }},
		{"stream .", func(k *livehooks.StreamKey) { k.Stream = "." }},
		{"stream ..", func(k *livehooks.StreamKey) { k.Stream = ".." }},
		{"stream with a slash", func(k *livehooks.StreamKey) { k.Stream = "../x" }},
	} {
		k := ok
		tc.mod(&k)
		if err := k.Validate(); livehooks.ErrorCode(err) != livehooks.EINVALID {
			t.Errorf("%s: %v, want EINVALID", tc.name, err)
		}
	}
	for _, name := range []string{"...", ".hidden", "a..b", "v1.0"} {
		k := ok
		k.App, k.Stream = name, name
		if err := k.Validate(); err != nil {
			t.Errorf("app and stream %q: %v", name, err)
		}
	}
}
