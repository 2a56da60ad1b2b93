// Package console is livehooks' web console: static pages embedded in the
// binary, served at /console, that manage callbacks and watch deliveries and
// recordings through the public /v1/ API, signed in with a session cookie.
package console
