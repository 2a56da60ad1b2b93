package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"

	"github.com/livehooks/livehooks"
)

// AnyProject, as a project of a credential, grants access to every project.
const AnyProject = "*"

// AccessKey is an AK/SK pair that signs requests (SDK-HMAC-SHA256), bound to projects.
type AccessKey struct {
	AK       string
	SK       string
	Projects []string
}

// Token is a static X-Auth-Token value bound to projects.
type Token struct {
	Token    string
	Projects []string
}

// IngestSecret authenticates media-server hooks posting events of a project
// (AnyProject: of every project).
type IngestSecret struct {
	Project string
	Secret  string
}

// The String, GoString and LogValue methods keep secrets out of fmt output and
// slog records by accident; code that means to show a secret reads the field.

func (k AccessKey) String() string {
	return fmt.Sprintf("access key %s (projects %s, secret redacted)", k.AK, strings.Join(k.Projects, ","))
}

// GoString redacts the SK from %#v.
func (k AccessKey) GoString() string { return "auth.AccessKey{" + k.String() + "}" }

// LogValue redacts the SK from slog records.
func (k AccessKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("ak", k.AK), slog.Any("projects", k.Projects))
}

func (t Token) String() string {
	return fmt.Sprintf("token %s (projects %s)", tokenName(t.Token), strings.Join(t.Projects, ","))
}

// GoString redacts the token from %#v.
func (t Token) GoString() string { return "auth.Token{" + t.String() + "}" }

// LogValue redacts the token from slog records.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", tokenName(t.Token)), slog.Any("projects", t.Projects))
}

func (s IngestSecret) String() string {
	return fmt.Sprintf("ingest secret for project %s (redacted)", s.Project)
}

// GoString redacts the secret from %#v.
func (s IngestSecret) GoString() string { return "auth.IngestSecret{" + s.String() + "}" }

// LogValue redacts the secret from slog records.
func (s IngestSecret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("project", s.Project))
}

// ParseAccessKey parses AK:SK:PROJECT[,PROJECT…] (a --access-key flag). The AK
// is letters, digits and `_.~-`; the SK is everything between the first and the
// last colon. Errors never repeat the input.
func ParseAccessKey(s string) (AccessKey, error) {
	const form = "access key must be AK:SK:PROJECT[,PROJECT…]"
	i, j := strings.IndexByte(s, ':'), strings.LastIndexByte(s, ':')
	if i < 0 || i == j {
		return AccessKey{}, livehooks.Errorf(livehooks.EINVALID, "%s", form)
	}
	k := AccessKey{AK: s[:i], SK: s[i+1 : j]}
	projects, err := parseProjects(s[j+1:])
	if err != nil {
		return AccessKey{}, livehooks.Errorf(livehooks.EINVALID, "%s: %s", form, err)
	}
	k.Projects = projects
	if err := k.validate(); err != nil {
		return AccessKey{}, err
	}
	return k, nil
}

// ParseToken parses TOKEN:PROJECT[,PROJECT…] (a --token flag), splitting at the
// last colon. Errors never repeat the input.
func ParseToken(s string) (Token, error) {
	const form = "token must be TOKEN:PROJECT[,PROJECT…]"
	j := strings.LastIndexByte(s, ':')
	if j < 0 {
		return Token{}, livehooks.Errorf(livehooks.EINVALID, "%s", form)
	}
	projects, err := parseProjects(s[j+1:])
	if err != nil {
		return Token{}, livehooks.Errorf(livehooks.EINVALID, "%s: %s", form, err)
	}
	t := Token{Token: s[:j], Projects: projects}
	if err := t.validate(); err != nil {
		return Token{}, err
	}
	return t, nil
}

// ParseIngestSecret parses PROJECT:SECRET (an --ingest-secret flag), splitting at
// the first colon. Errors never repeat the input.
func ParseIngestSecret(s string) (IngestSecret, error) {
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return IngestSecret{}, livehooks.Errorf(livehooks.EINVALID, "ingest secret must be PROJECT:SECRET")
	}
	is := IngestSecret{Project: s[:i], Secret: s[i+1:]}
	if err := is.validate(); err != nil {
		return IngestSecret{}, err
	}
	return is, nil
}

func (k AccessKey) validate() error {
	if !isAccessKeyID(k.AK) {
		return livehooks.Errorf(livehooks.EINVALID, "access key id must be 1-128 letters, digits, '_', '.', '~' or '-'")
	}
	if !isSecret(k.SK) {
		return livehooks.Errorf(livehooks.EINVALID, "secret key must be 1-%d printable characters without spaces", maxSecret)
	}
	return validateProjects("access key", k.Projects)
}

func (t Token) validate() error {
	if !isSecret(t.Token) {
		return livehooks.Errorf(livehooks.EINVALID, "token must be 1-%d printable characters without spaces", maxSecret)
	}
	return validateProjects("token", t.Projects)
}

func (s IngestSecret) validate() error {
	if !isProject(s.Project) {
		return livehooks.Errorf(livehooks.EINVALID, "ingest secret project must be * or 1-128 letters, digits, '_', '.' or '-'")
	}
	if !isSecret(s.Secret) {
		return livehooks.Errorf(livehooks.EINVALID, "ingest secret must be 1-%d printable characters without spaces", maxSecret)
	}
	return nil
}

func parseProjects(s string) ([]string, error) {
	if s == "" {
		return nil, fmt.Errorf("no project")
	}
	projects := strings.Split(s, ",")
	for _, p := range projects {
		if !isProject(p) {
			return nil, fmt.Errorf("a project must be * or 1-128 letters, digits, '_', '.' or '-'")
		}
	}
	return projects, nil
}

func validateProjects(what string, projects []string) error {
	if len(projects) == 0 {
		return livehooks.Errorf(livehooks.EINVALID, "%s must be bound to at least one project", what)
	}
	for _, p := range projects {
		if !isProject(p) {
			return livehooks.Errorf(livehooks.EINVALID, "%s: a project must be * or 1-128 letters, digits, '_', '.' or '-'", what)
		}
	}
	return nil
}

// isProject accepts the project ids that can appear in a /v1/{project_id}/ path
// without escaping: Huawei's are 32 hex digits, tests use names like projA.
func isProject(s string) bool {
	if s == AnyProject {
		return true
	}
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; !isAlnum(b) && b != '_' && b != '.' && b != '-' {
			return false
		}
	}
	return true
}

// isAccessKeyID keeps AKs free of the separators of the Authorization header
// (space, comma, '=') so that parsing it is unambiguous.
func isAccessKeyID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; !isAlnum(b) && b != '_' && b != '.' && b != '~' && b != '-' {
			return false
		}
	}
	return true
}

const maxSecret = 1024

// isSecret accepts printable ASCII without spaces: secrets travel in headers,
// query strings and space-separated environment variables.
func isSecret(s string) bool {
	if len(s) == 0 || len(s) > maxSecret {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// tokenName names a token in logs and principals. Long tokens show their first
// four characters, as operators recognise them; short ones (set by hand) would
// give too much away, so they show a fingerprint instead.
func tokenName(token string) string {
	if len(token) >= 16 {
		return "token:" + token[:4] + "…"
	}
	sum := sha256.Sum256([]byte(token))
	return "token:sha256:" + hex.EncodeToString(sum[:4])
}

// MatchIngestSecret reports whether secret is the ingest secret of project (or
// of AnyProject) among secrets. It compares every candidate in constant time.
func MatchIngestSecret(secrets []IngestSecret, project, secret string) bool {
	got := sha256.Sum256([]byte(secret))
	match := 0
	for _, s := range secrets {
		want := sha256.Sum256([]byte(s.Secret))
		eq := subtle.ConstantTimeCompare(got[:], want[:])
		if s.Project == project || s.Project == AnyProject {
			match |= eq
		}
	}
	return match == 1 && secret != ""
}
