package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/api"
)

// recordingConfig is the file of serve --recording-config: per-domain
// recording settings, with the fields of PUT /v1/{project_id}/record/domains/
// {publish_domain} plus the project and the domain. For example:
//
//	domains:
//	  - project_id: 0123456789abcdef0123456789abcdef
//	    publish_domain: push.example.com
//	    record_format: HLS
//	    max_pause_seconds: 60
//	    storage:
//	      endpoint: obs.cn-north-4.myhuaweicloud.com
//	      bucket: recordings
//	      access_key: AKIDEXAMPLE
//	      secret_key_env: LIVEHOOKS_OBS_SECRET
//	      presign: true
type recordingConfig struct {
	Domains []recordingDomain `yaml:"domains"`
}

type recordingDomain struct {
	ProjectID         string `yaml:"project_id"`
	PublishDomain     string `yaml:"publish_domain"`
	api.DomainRequest `yaml:",inline"`
}

// maxRecordingConfigBytes bounds the file: it is configuration, not data.
const maxRecordingConfigBytes = 4 << 20

// loadRecordingConfig reads and checks the file and resolves secret_key_env
// from the environment. It checks each entry's shape; applyRecordingConfig
// validates the settings themselves (which needs the store, for a kept
// secret).
func loadRecordingConfig(path string, getenv func(string) string) ([]recordingDomain, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--recording-config: %w", err)
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxRecordingConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("--recording-config %s: %w", path, err)
	}
	if len(body) > maxRecordingConfigBytes {
		return nil, fmt.Errorf("--recording-config %s: larger than %d bytes", path, maxRecordingConfigBytes)
	}
	var cfg recordingConfig
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true) // a misspelt field is an error, not a silent default
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		// yaml.v3's errors name the line; a storage secret, a string field,
		// decodes from any scalar, so its value never shows in one.
		return nil, fmt.Errorf("--recording-config %s: %w", path, err)
	}
	seen := map[[2]string]int{}
	for i := range cfg.Domains {
		d := &cfg.Domains[i]
		name := entryName(i, d)
		if d.ProjectID == "" || d.PublishDomain == "" {
			return nil, fmt.Errorf("--recording-config %s: %s: project_id and publish_domain are required", path, name)
		}
		k := [2]string{d.ProjectID, d.PublishDomain}
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("--recording-config %s: %s: the same project and domain as domains[%d]", path, name, j)
		}
		seen[k] = i
		if st := d.Storage; st != nil && st.SecretKeyEnv != "" {
			if st.SecretKey != nil && *st.SecretKey != "" {
				return nil, fmt.Errorf("--recording-config %s: %s: storage: give secret_key or secret_key_env, not both", path, name)
			}
			secret := getenv(st.SecretKeyEnv)
			if secret == "" {
				return nil, fmt.Errorf("--recording-config %s: %s: storage.secret_key_env: environment variable %s is not set", path, name, st.SecretKeyEnv)
			}
			st.SecretKey = &secret
		}
	}
	return cfg.Domains, nil
}

func entryName(i int, d *recordingDomain) string {
	if d.ProjectID == "" && d.PublishDomain == "" {
		return fmt.Sprintf("domains[%d]", i)
	}
	return fmt.Sprintf("domains[%d] (%s %s)", i, d.ProjectID, d.PublishDomain)
}

// applyRecordingConfig validates every entry with the API's rules, then
// stores them all: an invalid file changes nothing. Entries replace what the
// API stored for the same domain; other domains are left alone.
func applyRecordingConfig(ctx context.Context, store livehooks.DomainStore, path string, entries []recordingDomain, now time.Time, logger *slog.Logger) error {
	settings := make([]*livehooks.DomainSettings, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		prev, err := store.FindDomain(ctx, e.ProjectID, e.PublishDomain)
		if livehooks.ErrorCode(err) == livehooks.ENOTFOUND {
			prev, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("--recording-config %s: %s: %w", path, entryName(i, e), err)
		}
		d, err := e.Settings(e.ProjectID, e.PublishDomain, prev, now)
		if err != nil {
			return fmt.Errorf("--recording-config %s: %s: %s", path, entryName(i, e), livehooks.ErrorMessage(err))
		}
		settings = append(settings, d)
	}
	for _, d := range settings {
		if err := store.PutDomain(ctx, d); err != nil {
			return fmt.Errorf("--recording-config %s: store %s %s: %w", path, d.ProjectID, d.PublishDomain, err)
		}
		logger.Info("recording settings applied", "file", path, "project_id", d.ProjectID, "publish_domain", d.PublishDomain,
			"record_format", d.RecordFormat, "storage", d.Storage != nil)
	}
	return nil
}

// warnPlaintextSecrets warns when the file holds a storage secret itself and
// others may read it.
func warnPlaintextSecrets(path string, entries []recordingDomain, logger *slog.Logger) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	for i := range entries {
		if st := entries[i].Storage; st != nil && st.SecretKeyEnv == "" && st.SecretKey != nil && *st.SecretKey != "" {
			logger.Warn("the recording config holds a storage secret_key and is readable by other users; chmod 600 it or use secret_key_env",
				"file", path, "mode", fi.Mode().Perm().String())
			return
		}
	}
}
