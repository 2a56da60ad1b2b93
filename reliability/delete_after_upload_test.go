package reliability

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDeleteAfterUpload: with delete_after_upload a recording's local file
// is deleted once its object is stored and its RECORD_FILE_COMPLETE was
// delivered; a file whose callback was refused (400) is kept, and so is
// every file of a domain without the setting.
func TestDeleteAfterUpload(t *testing.T) {
	t.Parallel()
	const bucket = "recordings"
	s3 := newStallingS3(t, bucket)
	s3.release()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(ok.Close)
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadRequest)
	}))
	t.Cleanup(refuse.Close)

	recDir := t.TempDir()
	s := recordingServer(t, recDir)
	s.createConfig("live", ok.URL)
	s.createConfig("bad", refuse.URL)
	storage := s3Storage(s3.srv.URL, bucket)
	s.api("PUT", "/v1/"+project+"/record/domains/"+domain, map[string]any{"delete_after_upload": true, "storage": storage})
	video, err := os.ReadFile(filepath.Join("..", "media", "testdata", "video.flv"))
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string) string {
		p := filepath.Join(recDir, name)
		if err := os.WriteFile(p, video, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	delivered, refused := file("live-1.flv"), file("bad-1.flv")
	s.nginxHook("record_done", "path="+delivered)
	s.nginxHook("record_done", "app=bad", "path="+refused)

	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(delivered); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the uploaded file whose callback was delivered is still there")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, key := range []string{"live/cam/live-1.flv", "bad/cam/bad-1.flv"} {
		if string(s3.object(t, bucket, key)) != string(video) {
			t.Fatalf("object %s differs from the file", key)
		}
	}
	// The refused callback's job is settled within a poll or two.
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(refused); err != nil {
		t.Fatalf("the file whose callback was refused: %v", err)
	}

	// Without the setting, files stay.
	s.api("PUT", "/v1/"+project+"/record/domains/"+domain, map[string]any{"storage": storage})
	kept := file("live-2.flv")
	s.nginxHook("record_done", "path="+kept)
	deadline = time.Now().Add(20 * time.Second)
	for {
		obj, err := s3.backend.GetObject(bucket, "live/cam/live-2.flv", nil)
		if err == nil {
			obj.Contents.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("live-2.flv not uploaded")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("a file of a domain without delete_after_upload: %v", err)
	}
}
