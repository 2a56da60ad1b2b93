// Package durable makes file-system changes survive a power cut.
package durable

import "os"

// SyncDir fsyncs a directory, so that the names created, renamed or
// removed in it are durable, not only the files' contents.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
