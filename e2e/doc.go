// Package e2e holds the end-to-end tests: the livehooks binary driven by the
// real media servers (Debian's nginx with libnginx-mod-rtmp, ffmpeg
// publishing a test pattern), checked at a callback receiver. They skip when
// those programs are missing, unless CI is set.
package e2e
