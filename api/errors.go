package api

import (
	"errors"
	"net/http"

	"github.com/livehooks/livehooks"
)

// Huawei error codes livehooks answers with.
const (
	codeRequestIllegal = "LIVE.100011001" // bad input and missing resources, as the seeds answer
	codeBadAuth        = "APIGW.0301"     // incorrect IAM authentication information
	codeForbidden      = "APIGW.0302"     // the credential may not act on this project
	codeDenied         = "LIVE.100011403" // a download link that is unsigned, altered or expired
	codeNoSuchAPI      = "APIGW.0101"     // the API does not exist
	codeThrottled      = "APIGW.0308"     // the throttling threshold has been reached
	codeUnavailable    = "LIVE.100011503" // the store cannot take writes now
	codeInternal       = "LIVE.100011500" // a bug
)

// errorBody is the Huawei error format.
type errorBody struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

// huaweiError maps a domain error to an HTTP status and a Huawei error body.
// This is the only place where that mapping lives.
func huaweiError(err error) (int, errorBody) {
	msg := livehooks.ErrorMessage(err)
	switch livehooks.ErrorCode(err) {
	case livehooks.EINVALID, livehooks.ECONFLICT:
		return http.StatusBadRequest, errorBody{codeRequestIllegal, "Request Illegal: " + msg}
	case livehooks.ENOTFOUND:
		return http.StatusNotFound, errorBody{codeRequestIllegal, "Request Illegal: " + msg}
	case livehooks.ETOOLARGE:
		return http.StatusRequestEntityTooLarge, errorBody{codeRequestIllegal, "Request Illegal: " + msg}
	case livehooks.EUNAUTHORIZED:
		return http.StatusUnauthorized, errorBody{codeBadAuth, "Incorrect IAM authentication information: " + msg}
	case livehooks.EFORBIDDEN:
		return http.StatusForbidden, errorBody{codeForbidden, "The credential is not authorized for this project: " + msg}
	case livehooks.EDENIED:
		return http.StatusForbidden, errorBody{codeDenied, "Access denied: " + msg}
	case livehooks.ETOOMANY:
		return http.StatusTooManyRequests, errorBody{codeThrottled, "The throttling threshold has been reached: " + msg}
	case livehooks.EUNAVAILABLE:
		return http.StatusServiceUnavailable, errorBody{codeUnavailable, "Service Unavailable: " + msg}
	default:
		return http.StatusInternalServerError, errorBody{codeInternal, "Internal Server Error"}
	}
}

// writeError answers err in the Huawei format. Internal errors are logged with
// their detail (which the caller never sees); client errors are not logged as
// errors. Messages never carry secrets: domain errors are written to be safe.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := huaweiError(err)
	if status >= 500 {
		s.logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "request_id", w.Header().Get(headerRequestID), "error", err)
	}
	var target *livehooks.Error
	if status == http.StatusUnauthorized && errors.As(err, &target) {
		s.logger.InfoContext(r.Context(), "authentication refused", "path", r.URL.Path, "request_id", w.Header().Get(headerRequestID), "reason", target.Message)
	}
	writeJSON(w, status, body)
}

// notFoundRoute answers routes that do not exist, as the Huawei API gateway does.
func (s *Server) notFoundRoute() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{codeNoSuchAPI, "The API does not exist or has not been published in the environment"})
	})
}
