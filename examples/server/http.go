package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// maxBody bounds a submitted request's JSON (a 16k-token prompt is about
// 100 KB).
const maxBody = 4 << 20

// Handler serves the server's HTTP API:
//
//	GET  /metrics              statistics in the Prometheus text format
//	GET  /stats                statistics as JSON
//	POST /requests             submit {"prompt":[...]|"prompt_len":N, "max_tokens":M, "n":K}
//	GET  /requests/{id}        a request's status
//	POST /requests/{id}/cancel cancel a request, freeing its blocks
//
// Errors are JSON objects {"error": "..."} with status 400 (bad request),
// 404 (unknown ID), 409 (already finished) or 503 (server stopped).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.HandleFunc("GET /stats", s.serveStats)
	mux.HandleFunc("POST /requests", s.serveSubmit)
	mux.HandleFunc("GET /requests/{id}", s.serveStatus)
	mux.HandleFunc("POST /requests/{id}/cancel", s.serveCancel)
	return mux
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	sn, err := s.Stats(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	var buf bytes.Buffer
	if err := WriteMetrics(&buf, sn); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", MetricsContentType)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	sn, err := s.Stats(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sn)
}

func (s *Server) serveSubmit(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	var spec Spec
	if err := dec.Decode(&spec); err != nil {
		writeError(w, fmt.Errorf("%w: body: %v", ErrInvalid, err))
		return
	}
	if dec.More() {
		writeError(w, fmt.Errorf("%w: body: more than one JSON value", ErrInvalid))
		return
	}
	st, err := s.Submit(r.Context(), spec)
	if err != nil {
		writeError(w, err)
		return
	}
	// 202: the request is queued; poll its status or cancel it by ID.
	writeJSON(w, http.StatusAccepted, st)
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
	writeError(w, err)
}

func (s *Server) serveCancel(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err == nil {
		var st Status
		if st, err = s.Cancel(r.Context(), id); err == nil {
			writeJSON(w, http.StatusOK, st)
			return
		}
	}
	writeError(w, err)
}

func pathID(r *http.Request) (ReqID, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%w: request id %q is not a positive integer", ErrInvalid, v)
	}
	return ReqID(id), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrTooLong):
		code = http.StatusBadRequest
	case errors.Is(err, ErrUnknownRequest):
		code = http.StatusNotFound
	case errors.Is(err, ErrFinished):
		code = http.StatusConflict
	case errors.Is(err, ErrClosed):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// listenAddr makes a bare ":port" bind the loopback interface, so the
// example never listens on every interface unless asked ("0.0.0.0:8080").
func listenAddr(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return net.JoinHostPort("127.0.0.1", addr[1:])
	}
	return addr
}
