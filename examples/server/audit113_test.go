package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAudit113HTTPDefaults: the zero HTTPConfig takes the documented
// defaults: a body of 16 bytes a token plus 4 KiB, 10 s to arrive, 64
// bodies at once, a wait of 1 s. A body timeout of 1 s (M2794) passed
// every test, whose bodies all arrive at once.
func TestAudit113HTTPDefaults(t *testing.T) {
	c, err := HTTPConfig{}.withDefaults(512)
	require.NoError(t, err)
	assert.Equal(t, HTTPConfig{MaxBodyBytes: 4<<10 + 16*512, BodyTimeout: 10 * time.Second,
		MaxConcurrentBodies: 64, RetryAfter: time.Second}, c)
}

// TestAudit113UncleanPathRedirect: a path that is not clean and matches
// no route once cleaned gets the mux's 307 to the clean path, as a JSON
// error whose code names the status and with the Location header the
// redirect needs. The code was not_found under M2798; before this audit
// the Location header was dropped (the capture kept only Allow).
func TestAudit113UncleanPathRedirect(t *testing.T) {
	srv, _ := newHTTPTest(t)
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/x/../nothing?a=1", nil))
	assert.Equal(t, http.StatusTemporaryRedirect, w.Code, w.Body.String())
	assert.Equal(t, "temporary_redirect", decodeError(t, w.Body.String()).Code)
	assert.Equal(t, "/nothing?a=1", w.Header().Get("Location"))
}

// TestAudit113IDOutsideTheAlphabetIsMalformed: an id of 26 characters
// with one outside base32's A-Z and 2-7 (the digits 0, 1, 8, 9, a lower
// case letter) is 400 invalid_request; one of the alphabet's digits is
// well formed (404 unknown_request). Taking every digit (M2817) answered
// 404 for the first four.
func TestAudit113IDOutsideTheAlphabetIsMalformed(t *testing.T) {
	_, hs := newHTTPTest(t)
	for _, c := range "0189a" {
		code, body := call(t, "GET", hs.URL+"/requests/"+strings.Repeat("A", 25)+string(c), "")
		assert.Equal(t, http.StatusBadRequest, code, "%c: %s", c, body)
		assert.Equal(t, "invalid_request", decodeError(t, body).Code, "%c", c)
	}
	for _, c := range "27" {
		code, body := call(t, "GET", hs.URL+"/requests/"+string(c)+strings.Repeat("Z", 25), "")
		assert.Equal(t, http.StatusNotFound, code, "%c: %s", c, body)
	}
}

// TestAudit113JSONAnswersAreNotSniffedOrEscaped: every JSON answer, an
// error's as a status's, carries X-Content-Type-Options: nosniff (M2821
// dropped it unseen), and its text is not HTML-escaped: an unknown field
// named <b>&</b> comes back as written, not as \u003cb\u003e (M2822).
func TestAudit113JSONAnswersAreNotSniffedOrEscaped(t *testing.T) {
	_, hs := newHTTPTest(t)
	code, body, hdr := callHeader(t, "POST", hs.URL+"/requests", `{"<b>&</b>": 1}`, "")
	require.Equal(t, http.StatusBadRequest, code, body)
	assert.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"))
	assert.Contains(t, body, `<b>&</b>`)
	assert.Contains(t, decodeError(t, body).Message, `"<b>&</b>"`)
	code, body, hdr = callHeader(t, "GET", hs.URL+"/stats", "", "")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"))
}

// TestAudit113OversizedBodyIsNotInvalid: DecodeSpec over a reader that
// stops at a size limit returns the limit's error, not ErrInvalid, as its
// documentation says of a reader's errors, whether the limit falls in the
// object's first token or inside a field's value. Wrapping it as invalid
// too (M2812) went unseen: readSpec still found the *http.MaxBytesError
// through the wrapping and answered 413.
func TestAudit113OversizedBodyIsNotInvalid(t *testing.T) {
	for _, limit := range []int64{0, 20} {
		_, err := DecodeSpec(http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(`{"prompt": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}`)), limit))
		var tooLarge *http.MaxBytesError
		require.ErrorAs(t, err, &tooLarge, "limit %d", limit)
		assert.NotErrorIs(t, err, ErrInvalid, "limit %d", limit)
	}
}
