package main

import (
	"net/http"

	"github.com/livehooks/livehooks/console"
)

// withConsole serves the web console at /console beside the API.
func withConsole(apiHandler http.Handler, c *console.Console) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/console", c)
	mux.Handle("/console/", c)
	mux.Handle("/", apiHandler)
	return mux
}
