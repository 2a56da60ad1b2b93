package livehooks

import (
	"errors"
	"fmt"
)

// Error codes of the domain. The HTTP layer maps them to status codes and to
// Huawei error codes in one place.
const (
	EINVALID      = "invalid"      // bad input: 400
	ENOTFOUND     = "not_found"    // no such resource: 404
	ECONFLICT     = "conflict"     // duplicate (project, domain, app): 400 as Huawei answers
	EUNAUTHORIZED = "unauthorized" // missing or bad credentials: 401
	EFORBIDDEN    = "forbidden"    // credential not bound to the project: 403
	EDENIED       = "denied"       // a refused link, whoever holds it (unsigned, altered, expired): 403
	ETOOLARGE     = "too_large"    // request body over the cap: 413
	ETOOMANY      = "too_many"     // too many concurrent requests of one kind: 429
	EUNAVAILABLE  = "unavailable"  // store cannot accept writes now: 503
	EINTERNAL     = "internal"     // a bug or an unexpected failure: 500
)

// Error is the domain error: a code from the list above and a message that is
// safe to show to the caller (it never contains a secret).
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("livehooks error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic message for other errors (whose text may carry internal details).
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
