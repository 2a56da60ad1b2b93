// Package deploy holds what installs livehooks on a host: the systemd unit
// livehooks.service, and the tests that check it with systemd-analyze.
package deploy
