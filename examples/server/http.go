package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// HTTPConfig bounds what one HTTP client can make the server hold. The
// zero value takes the defaults.
type HTTPConfig struct {
	// MaxBodyBytes bounds a submission's body; a larger one gets 413.
	// Default: room for a prompt of MaxModelLen tokens at 16 bytes per
	// token (a token ID, a comma and some spaces), plus 4 KiB.
	MaxBodyBytes int64
	// BodyTimeout bounds the time a submission's body may take to arrive,
	// counted from when its handler starts; a slower body gets 408 and
	// the connection is closed. Default 10 s.
	BodyTimeout time.Duration
	// MaxConcurrentBodies bounds the submissions being read and queued at
	// once; more get 429 at once, before their body is read. With
	// MaxBodyBytes it bounds the memory that bodies in flight can take.
	// Default 64.
	MaxConcurrentBodies int
	// RetryAfter is what 429 and 503 answers ask clients to wait (the
	// Retry-After header, in whole seconds, at least 1). Default 1 s.
	RetryAfter time.Duration
}

// withDefaults fills in the zero fields of c for a model length of
// maxModelLen tokens and checks the rest.
func (c HTTPConfig) withDefaults(maxModelLen int) (HTTPConfig, error) {
	switch {
	case c.MaxBodyBytes < 0:
		return c, fmt.Errorf("%w: MaxBodyBytes %d is negative", ErrInvalid, c.MaxBodyBytes)
	case c.BodyTimeout < 0:
		return c, fmt.Errorf("%w: BodyTimeout %v is negative", ErrInvalid, c.BodyTimeout)
	case c.MaxConcurrentBodies < 0:
		return c, fmt.Errorf("%w: MaxConcurrentBodies %d is negative", ErrInvalid, c.MaxConcurrentBodies)
	case c.RetryAfter < 0:
		return c, fmt.Errorf("%w: RetryAfter %v is negative", ErrInvalid, c.RetryAfter)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 4<<10 + 16*int64(maxModelLen)
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = 10 * time.Second
	}
	if c.MaxConcurrentBodies == 0 {
		c.MaxConcurrentBodies = 64
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Second
	}
	return c, nil
}

// The timeouts of NewHTTPServer.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
)

// NewHTTPServer returns an http.Server for h with the limits a service
// exposed to untrusted clients needs: headers must arrive within 5 s and
// the whole request within 15 s (Handler's BodyTimeout cuts a slow
// submission body sooner), an answer must be written within 30 s, an idle
// keep-alive connection is closed after 60 s, and headers are limited to
// 64 KiB.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// Handler serves the server's HTTP API:
//
//	GET  /metrics              statistics in the Prometheus text format
//	GET  /stats                statistics as JSON
//	POST /requests             submit {"prompt":[...]|"prompt_len":N, "max_tokens":M, "n":K}
//	GET  /requests/{id}        a request's status
//	POST /requests/{id}/cancel cancel a request (Authorization: Bearer <cancel_token>)
//
// A submission answers 202 with the request's status, its unguessable ID
// and its cancel token. Every error, 404 and 405 included, is a JSON
// object {"error": code, "message": text} whose code is stable (see
// errorCode); 429 and 503 carry Retry-After.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /stats", s.serveStats)
	mux.HandleFunc("POST /requests", s.serveSubmit)
	mux.HandleFunc("GET /requests/{id}", s.serveStatus)
	mux.HandleFunc("POST /requests/{id}/cancel", s.serveCancel)
	return jsonNoRoute{mux: mux, retryAfter: s.cfg.HTTP.RetryAfter}
}

// jsonNoRoute serves mux, answering the requests no route matches (404,
// or 405 with the Allow header) with JSON errors instead of the mux's
// plain text.
type jsonNoRoute struct {
	mux        *http.ServeMux
	retryAfter time.Duration
}

func (j jsonNoRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := j.mux.Handler(r)
	if pattern != "" {
		// A route (or a redirect to one); ServeHTTP sets the path values.
		j.mux.ServeHTTP(w, r)
		return
	}
	// The mux's own answer tells 404 from 405 and lists the allowed
	// methods, or redirects a path that is not clean (307 with Location,
	// even when the clean path matches no route); keep its status and
	// those headers, replace its body.
	c := statusCapture{header: make(http.Header)}
	h.ServeHTTP(&c, r)
	if allow := c.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	if loc := c.header.Get("Location"); loc != "" {
		w.Header().Set("Location", loc) // a redirect to the clean path
	}
	code, name := c.code, "not_found"
	switch code {
	case http.StatusNotFound:
	case http.StatusMethodNotAllowed:
		name = "method_not_allowed"
	default:
		name = strings.ToLower(strings.ReplaceAll(http.StatusText(code), " ", "_"))
	}
	writeJSON(w, code, apiError{Code: name, Message: fmt.Sprintf("server: %s %s: %s", r.Method, r.URL.Path, strings.ToLower(http.StatusText(code)))})
}

// statusCapture is a ResponseWriter that keeps the status and headers and
// drops the body.
type statusCapture struct {
	header http.Header
	code   int
}

func (c *statusCapture) Header() http.Header { return c.header }
func (c *statusCapture) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}
func (c *statusCapture) Write(p []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(p), nil
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	sn, err := s.Stats(r.Context())
	if err != nil {
		s.writeError(w, err)
		return
	}
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, sn); err != nil {
		s.writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", MetricsContentType)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	sn, err := s.Stats(r.Context())
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sn)
}

func (s *Server) serveSubmit(w http.ResponseWriter, r *http.Request) {
	// Refuse before reading the body when too many are in flight: bodies
	// are what a flood of submissions would make the server hold.
	select {
	case s.bodies <- struct{}{}:
		defer func() { <-s.bodies }()
	default:
		s.reject(ReasonOverloaded)
		s.writeError(w, fmt.Errorf("%w: %d submissions are being read", ErrOverloaded, cap(s.bodies)))
		return
	}
	spec, err := s.readSpec(w, r)
	if err != nil {
		s.reject(reasonOf(err))
		s.writeError(w, err)
		return
	}
	// The scheduler counts its own refusals, Submit those of a stopped
	// loop; a client that went away was refused nothing.
	st, err := s.Submit(r.Context(), spec)
	if err != nil {
		s.writeError(w, err)
		return
	}
	// 202: the request is queued; poll its status by ID, cancel it with
	// the token.
	writeJSON(w, http.StatusAccepted, st)
}

// readSpec reads a submission's body within the size and time limits.
func (s *Server) readSpec(w http.ResponseWriter, r *http.Request) (Spec, error) {
	// A deadline on the connection, not on a context: a client sending
	// one byte every few seconds is cut off when it passes, whatever the
	// http.Server's own timeouts. Recorders in tests do not support it.
	rc := http.NewResponseController(w)
	err := rc.SetReadDeadline(time.Now().Add(s.cfg.HTTP.BodyTimeout))
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		return Spec{}, fmt.Errorf("%w: %v", ErrBodyTimeout, err)
	}
	spec, err := DecodeSpec(http.MaxBytesReader(w, r.Body, s.cfg.HTTP.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		// The deadline was for the body; net/http sets its own again
		// before the connection's next request.
		_ = rc.SetReadDeadline(time.Time{})
		return spec, nil
	case errors.As(err, &tooLarge):
		return Spec{}, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, tooLarge.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Spec{}, fmt.Errorf("%w: the body took longer than %v", ErrBodyTimeout, s.cfg.HTTP.BodyTimeout)
	}
	return Spec{}, err
}

// DecodeSpec reads one JSON object from r into a Spec. Field names must
// match exactly ("max_tokens", not "Max_Tokens": encoding/json alone would
// accept any case), each may appear once, unknown fields are refused, and
// nothing but white space may follow the object. Errors wrap ErrInvalid,
// or the reader's own error when reading failed.
func DecodeSpec(r io.Reader) (Spec, error) {
	var spec Spec
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return Spec{}, bodyError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Spec{}, fmt.Errorf("%w: body: want a JSON object", ErrInvalid)
	}
	var seen [4]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Spec{}, bodyError(err)
		}
		key, _ := tok.(string) // inside an object, Token returns keys as strings
		var dst any
		i := 0
		switch key {
		case "prompt":
			dst = &spec.Prompt
		case "prompt_len":
			dst, i = &spec.PromptLen, 1
		case "max_tokens":
			dst, i = &spec.MaxTokens, 2
		case "n":
			dst, i = &spec.N, 3
		default:
			return Spec{}, fmt.Errorf("%w: body: unknown field %q (names are case-sensitive)", ErrInvalid, key)
		}
		if seen[i] {
			return Spec{}, fmt.Errorf("%w: body: field %q given twice", ErrInvalid, key)
		}
		seen[i] = true
		if err := dec.Decode(dst); err != nil {
			if be := bodyError(err); !isJSONError(err) {
				return Spec{}, be // the reader's error, or the body cut short
			}
			return Spec{}, fmt.Errorf("%w: body: field %q: %w", ErrInvalid, key, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Spec{}, bodyError(err)
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
		return spec, nil
	case err == nil:
		return Spec{}, fmt.Errorf("%w: body: more than one JSON value", ErrInvalid)
	default:
		return Spec{}, bodyError(err)
	}
}

// isJSONError reports whether err is the decoder's complaint about the
// JSON itself (a syntax error, a value of the wrong type or range), not
// the reader's or the body's end.
func isJSONError(err error) bool {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.As(err, &syntax) || errors.As(err, &typ)
}

// bodyError classifies an error met while decoding: the reader's own
// errors (size limit, deadline) pass through, the rest is invalid JSON.
func bodyError(err error) error {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, ErrInvalid), errors.As(err, &tooLarge), errors.Is(err, os.ErrDeadlineExceeded):
		return err
	case err == io.EOF, err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%w: body: unexpected end of JSON", ErrInvalid)
	}
	return fmt.Errorf("%w: body: %w", ErrInvalid, err)
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		var st Status
		if st, err = s.Status(r.Context(), id); err == nil {
			writeJSON(w, http.StatusOK, st)
			return
		}
	}
	s.writeError(w, err)
}

func (s *Server) serveCancel(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pagedkv"`)
		writeJSON(w, http.StatusUnauthorized, apiError{Code: "missing_token",
			Message: "server: cancelling needs the request's cancel token: Authorization: Bearer <cancel_token>"})
		return
	}
	st, err := s.Cancel(r.Context(), id, token)
	if err != nil {
		s.writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// pathID returns the {id} of the path if it has the form of a request ID
// (26 characters of base32, as crypto/rand.Text makes them).
func pathID(r *http.Request) (ReqID, error) {
	v := r.PathValue("id")
	ok := len(v) == 26
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = c >= 'A' && c <= 'Z' || c >= '2' && c <= '7'
	}
	if !ok {
		return "", fmt.Errorf("%w: request id %q is malformed (want 26 characters of A-Z and 2-7)", ErrInvalid, v)
	}
	return ReqID(v), nil
}

// apiError is the body of every error answer.
type apiError struct {
	// Code is stable: clients may switch on it.
	Code string `json:"error"`
	// Message is for people and may change.
	Message string `json:"message"`
}

// errorCode maps an error to its HTTP status and stable code.
func errorCode(err error) (int, string) {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest, ReasonInvalid.String()
	case errors.Is(err, ErrTooLong):
		return http.StatusBadRequest, ReasonTooLong.String()
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge, ReasonBodyTooLarge.String()
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout, ReasonBodyTimeout.String()
	case errors.Is(err, ErrQueueFull):
		return http.StatusTooManyRequests, ReasonQueueFull.String()
	case errors.Is(err, ErrOverloaded):
		return http.StatusTooManyRequests, ReasonOverloaded.String()
	case errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable, ReasonClosed.String()
	case errors.Is(err, ErrUnknownRequest):
		return http.StatusNotFound, "unknown_request"
	case errors.Is(err, ErrBadToken):
		return http.StatusForbidden, "wrong_token"
	case errors.Is(err, ErrFinished):
		return http.StatusConflict, "already_finished"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The client went away or the server is shutting down.
		return http.StatusServiceUnavailable, ReasonClosed.String()
	}
	return http.StatusInternalServerError, "internal"
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	code, name := errorCode(err)
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		secs := max(1, int64(math.Ceil(s.cfg.HTTP.RetryAfter.Seconds())))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	writeJSON(w, code, apiError{Code: name, Message: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // the content type is JSON, never HTML
	_ = enc.Encode(v)
}

// listenAddr makes a bare ":port" bind the loopback interface, so the
// example never listens on every interface unless asked ("0.0.0.0:8080").
func listenAddr(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return net.JoinHostPort("127.0.0.1", addr[1:])
	}
	return addr
}
