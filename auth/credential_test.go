package auth

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/livehooks/livehooks"
)

func TestParseAccessKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    AccessKey
		wantErr bool
	}{
		{in: "AK:SK:projA", want: AccessKey{AK: "AK", SK: "SK", Projects: []string{"projA"}}},
		{in: "AK2:SK2:projB,projC", want: AccessKey{AK: "AK2", SK: "SK2", Projects: []string{"projB", "projC"}}},
		{in: "HPUA0123:s3cr:et/+=:*", want: AccessKey{AK: "HPUA0123", SK: "s3cr:et/+=", Projects: []string{"*"}}},
		{in: "", wantErr: true},
		{in: "AK", wantErr: true},
		{in: "AK:S3KR1TVALUE", wantErr: true},
		{in: "AK:S3KR1TVALUE:", wantErr: true},
		{in: ":S3KR1TVALUE:p", wantErr: true},
		{in: "AK::p", wantErr: true},
		{in: "A K:S3KR1TVALUE:p", wantErr: true},
		{in: "AK,X:S3KR1TVALUE:p", wantErr: true},
		{in: "AK:S3KR1T VALUE:p", wantErr: true},
		{in: "AK:S3KR1TVALUE:p,,q", wantErr: true},
		{in: "AK:S3KR1TVALUE:p/q", wantErr: true},
		{in: "AK:S3KR1TVALUE:" + strings.Repeat("p", 129), wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseAccessKey(tt.in)
		checkParse(t, "ParseAccessKey", tt.in, "S3KR1T", got, tt.want, err, tt.wantErr)
	}
}

func TestParseToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Token
		wantErr bool
	}{
		{in: "tok:projA", want: Token{Token: "tok", Projects: []string{"projA"}}},
		{in: "a:b:c:*", want: Token{Token: "a:b:c", Projects: []string{"*"}}},
		{in: "S3KR1TTOKEN", wantErr: true},
		{in: ":projA", wantErr: true},
		{in: "S3KR1TTOKEN:", wantErr: true},
		{in: "S3KR1T TOKEN:p", wantErr: true},
		{in: "S3KR1TTOKEN\x00:p", wantErr: true},
		{in: "S3KR1TTOKEN:p q", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseToken(tt.in)
		checkParse(t, "ParseToken", tt.in, "S3KR1T", got, tt.want, err, tt.wantErr)
	}
}

func TestParseIngestSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    IngestSecret
		wantErr bool
	}{
		{in: "projA:s3cret", want: IngestSecret{Project: "projA", Secret: "s3cret"}},
		{in: "*:a:b", want: IngestSecret{Project: "*", Secret: "a:b"}},
		{in: "S3KR1T", wantErr: true},
		{in: "projA:", wantErr: true},
		{in: ":S3KR1T", wantErr: true},
		{in: "pro j:S3KR1T", wantErr: true},
		{in: "projA:S3KR1T WITH SPACE", wantErr: true},
		{in: "projA:S3KR1Té", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseIngestSecret(tt.in)
		checkParse(t, "ParseIngestSecret", tt.in, "S3KR1T", got, tt.want, err, tt.wantErr)
	}
}

func checkParse(t *testing.T, fn, in, secret string, got, want any, err error, wantErr bool) {
	t.Helper()
	if wantErr {
		if err == nil {
			t.Errorf("%s(%q) = %v, want an error", fn, in, got)
			return
		}
		if code := livehooks.ErrorCode(err); code != livehooks.EINVALID {
			t.Errorf("%s(%q): code %q, want EINVALID", fn, in, code)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s(%q): error %q repeats the secret", fn, in, err)
		}
		return
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("%s(%q) = %#v, %v; want %#v", fn, in, got, err, want)
	}
}

func TestSecretsStayOutOfOutput(t *testing.T) {
	t.Parallel()
	const secret = "VERYSECRETVALUE0123456789"
	values := []any{
		AccessKey{AK: "AK", SK: secret, Projects: []string{"p"}},
		Token{Token: secret, Projects: []string{"p"}},
		IngestSecret{Project: "p", Secret: secret},
	}
	for _, v := range values {
		var buf bytes.Buffer
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			fmt.Fprintf(&buf, verb+"\n", v)
		}
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "cred", v)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "cred", v)
		if strings.Contains(buf.String(), secret) || strings.Contains(buf.String(), secret[:8]) {
			t.Errorf("%T printed its secret:\n%s", v, buf.String())
		}
	}
}

func TestTokenName(t *testing.T) {
	t.Parallel()
	if got := tokenName("abcdefghijklmnopqrstuvwxyz"); got != "token:abcd…" {
		t.Errorf("long token name %q", got)
	}
	short := tokenName("hunter2")
	if strings.Contains(short, "hunt") || !strings.HasPrefix(short, "token:sha256:") {
		t.Errorf("short token name %q", short)
	}
}

func TestMatchIngestSecret(t *testing.T) {
	t.Parallel()
	secrets := []IngestSecret{{Project: "projA", Secret: "aaaa"}, {Project: "*", Secret: "star"}}
	tests := []struct {
		project, secret string
		want            bool
	}{
		{"projA", "aaaa", true},
		{"projA", "star", true},
		{"projB", "star", true},
		{"projB", "aaaa", false},
		{"projA", "aaa", false},
		{"projA", "", false},
	}
	for _, tt := range tests {
		if got := MatchIngestSecret(secrets, tt.project, tt.secret); got != tt.want {
			t.Errorf("MatchIngestSecret(%q, %q) = %v, want %v", tt.project, tt.secret, got, tt.want)
		}
	}
	if MatchIngestSecret(nil, "p", "") {
		t.Error("empty secret matched no secrets")
	}
}
