package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/livehooks/livehooks"
	"github.com/livehooks/livehooks/signature"
)

type listenOptions struct {
	listen     string
	port       int
	key        string
	signType   string
	status     int
	failFirst  int
	failStatus int
	retryAfter string
	jsonOut    bool
}

func newListenCommand(e *env) *cobra.Command {
	o := &listenOptions{}
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Receive callbacks locally, print them and verify their signatures",
		Long: `Run a local callback receiver, like "stripe listen": every callback is printed
with the result of verifying its auth_sign (and expiry) and its Standard Webhooks
signature with --key. It can answer with failures, to watch retries by hand:
--fail-first 3 --fail-status 503 answers the first three callbacks with 503.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listen(cmd.Context(), e, o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.listen, "listen", "", "address to listen on (default 127.0.0.1:PORT)")
	fs.IntVar(&o.port, "port", 9000, "port to listen on (0 picks a free one)")
	fs.StringVar(&o.key, "key", "", "the callback config's key, to verify signatures")
	fs.StringVar(&o.signType, "sign-type", livehooks.SignHMACSHA256, "HMACSHA256 or MD5")
	fs.IntVar(&o.status, "status", 200, "status to answer with")
	fs.IntVar(&o.failFirst, "fail-first", 0, "answer the first N callbacks with --fail-status")
	fs.IntVar(&o.failStatus, "fail-status", 500, "status of the failing answers")
	fs.StringVar(&o.retryAfter, "retry-after", "", "Retry-After header to send with failing answers")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object per callback instead of text")
	for name, variable := range map[string]string{
		"listen": "LIVEHOOKS_LISTEN_ADDR", "port": "LIVEHOOKS_LISTEN_PORT", "key": "LIVEHOOKS_LISTEN_KEY", "sign-type": "LIVEHOOKS_LISTEN_SIGN_TYPE",
	} {
		envFlag(fs, name, variable)
	}
	return cmd
}

// received is what listen prints for one callback.
type receivedCallback struct {
	N               int             `json:"n"`
	Time            string          `json:"time"`
	EventType       string          `json:"event_type"`
	Stream          string          `json:"stream"`
	WebhookID       string          `json:"webhook_id"`
	AuthSign        string          `json:"auth_sign_check"`
	WebhookSig      string          `json:"webhook_signature_check"`
	Status          int             `json:"answered"`
	Body            json.RawMessage `json:"body"`
	MalformedReason string          `json:"malformed,omitempty"`
}

func listen(ctx context.Context, e *env, o *listenOptions) error {
	switch o.signType {
	case livehooks.SignHMACSHA256, livehooks.SignMD5:
	default:
		return fmt.Errorf("--sign-type: %q is not HMACSHA256 or MD5", o.signType)
	}
	addr := o.listen
	if addr == "" {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(e.stdout, "livehooks listen: receiving callbacks on http://%s/\n", ln.Addr())
	if o.key == "" {
		fmt.Fprintln(e.stdout, "livehooks listen: no --key given: signatures are shown but not verified")
	}
	var mu sync.Mutex
	n := 0
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		mu.Lock()
		defer mu.Unlock()
		n++
		status := o.status
		if n <= o.failFirst {
			status = o.failStatus
			if o.retryAfter != "" {
				w.Header().Set("Retry-After", o.retryAfter)
			}
		}
		rc := inspect(o, r, body, time.Now())
		rc.N, rc.Status = n, status
		printCallback(e.stdout, o.jsonOut, rc)
		w.WriteHeader(status)
	})}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// inspect verifies one callback with the public signature package, as a
// receiver written in Go would.
func inspect(o *listenOptions, r *http.Request, body []byte, now time.Time) receivedCallback {
	rc := receivedCallback{Time: livehooks.FormatTime(now), WebhookID: r.Header.Get("webhook-id"), Body: body}
	var msg struct {
		EventType string `json:"event_type"`
		Stream    string `json:"stream"`
		AuthSign  string `json:"auth_sign"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || !json.Valid(body) {
		rc.MalformedReason = "the body is not JSON"
		rc.Body, _ = json.Marshal(string(body))
		return rc
	}
	rc.EventType, rc.Stream = msg.EventType, msg.Stream
	switch {
	case msg.AuthSign == "":
		rc.AuthSign = "unsigned"
	case o.key == "":
		rc.AuthSign = "not verified (no --key)"
	default:
		rc.AuthSign = verdict(signature.VerifyBody(o.signType, o.key, body, now), o.signType)
	}
	switch {
	case r.Header.Get("webhook-signature") == "":
		rc.WebhookSig = "unsigned"
	case o.key == "":
		rc.WebhookSig = "not verified (no --key)"
	default:
		rc.WebhookSig = verdict(signature.VerifyWebhook(o.key, r.Header, body, now, 0), "v1")
	}
	return rc
}

func verdict(err error, what string) string {
	switch {
	case err == nil:
		return "valid (" + what + ")"
	case errors.Is(err, signature.ErrExpired):
		return "EXPIRED"
	case errors.Is(err, signature.ErrMismatch):
		return "INVALID: signature mismatch"
	}
	return "INVALID: " + err.Error()
}

func printCallback(w io.Writer, jsonOut bool, rc receivedCallback) {
	if jsonOut {
		b, _ := json.Marshal(rc)
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, rc.Body, "  ", "  ") != nil {
		pretty.Reset()
		pretty.Write(rc.Body)
	}
	fmt.Fprintf(w, "\n#%d %s %s stream=%s webhook-id=%s -> answered %d\n  auth_sign: %s\n  webhook-signature: %s\n  %s\n",
		rc.N, rc.Time, rc.EventType, rc.Stream, rc.WebhookID, rc.Status, rc.AuthSign, rc.WebhookSig, pretty.String())
	if rc.MalformedReason != "" {
		fmt.Fprintf(w, "  malformed: %s\n", rc.MalformedReason)
	}
}
