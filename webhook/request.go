package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sigsjson "sigs.k8s.io/json"
)

// Size limits. kube-apiserver accepts request bodies of up to 3 MiB, so no
// client can send it a bigger object, and etcd stores values of up to
// 1.5 MiB by default, so an UPDATE review (object and oldObject) of stored
// objects stays under 3 MiB. The body limit leaves room for the rest of
// the review.
const (
	MaxObjectBytes  = 3 << 20
	MaxRequestBytes = MaxObjectBytes + 512<<10
)

var admissionGroupVersions = map[string]bool{
	admissionv1.SchemeGroupVersion.String(): true,
	"admission.k8s.io/v1beta1":              true, // same shape as v1
}

// httpError is a request the webhook cannot judge: it is answered with the
// HTTP status, not with an AdmissionResponse, so the API server counts it
// as a webhook failure and applies the failurePolicy (Ignore fails open).
type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) *httpError {
	return &httpError{code: http.StatusBadRequest, err: fmt.Errorf(format, args...)}
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readReview reads and decodes the AdmissionReview of an HTTP request.
func readReview(r *http.Request) (*admissionv1.AdmissionReview, *httpError) {
	if r.Method != http.MethodPost {
		return nil, &httpError{code: http.StatusMethodNotAllowed, err: fmt.Errorf("method %s not allowed: POST an AdmissionReview", r.Method)}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, badRequest("Content-Type %q is not application/json", ct)
		}
	}
	if r.Body == nil {
		return nil, badRequest("empty body: POST an AdmissionReview")
	}
	if r.ContentLength > MaxRequestBytes {
		return nil, tooLarge()
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer putBuffer(buf)
	buf.Reset()
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, MaxRequestBytes+1))
	if err != nil {
		return nil, badRequest("reading the body: %w", err)
	}
	if n > MaxRequestBytes {
		return nil, tooLarge()
	}
	// The decoded review copies what it keeps (RawExtension copies its
	// bytes), so the buffer can be reused as soon as this returns.
	return decodeReview(buf.Bytes())
}

func tooLarge() *httpError {
	return badRequest("body larger than %d bytes: an AdmissionReview of objects the API server stores is smaller", MaxRequestBytes)
}

// putBuffer returns a body buffer to the pool, unless it grew for an
// unusually large body.
func putBuffer(buf *bytes.Buffer) {
	if buf == nil || buf.Cap() > 1<<20 {
		return
	}
	bufPool.Put(buf)
}

// decodeReview decodes an AdmissionReview request and checks what every
// endpoint needs: the type, a request, its uid and its kind.
func decodeReview(data []byte) (*admissionv1.AdmissionReview, *httpError) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, badRequest("empty body: POST an AdmissionReview")
	}
	ar := &admissionv1.AdmissionReview{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, ar); err != nil {
		return nil, badRequest("body is not an AdmissionReview: %w", err)
	}
	if ar.Kind != "AdmissionReview" || !admissionGroupVersions[ar.APIVersion] {
		return nil, badRequest("body is not an AdmissionReview: apiVersion %q, kind %q (want admission.k8s.io/v1, AdmissionReview)", ar.APIVersion, ar.Kind)
	}
	if ar.Request == nil {
		return nil, badRequest("AdmissionReview has no request")
	}
	if ar.Request.UID == "" {
		return nil, badRequest("AdmissionReview request has no uid")
	}
	if ar.Request.Kind.Kind == "" || ar.Request.Kind.Version == "" {
		return nil, badRequest("unknown kind: the request's kind is %q, version %q", ar.Request.Kind.Kind, ar.Request.Kind.Version)
	}
	return ar, nil
}

// typeMeta is just enough of an object to know what it is.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// checkObjects checks that a request carries what its operation is judged
// on (the object, or for DELETE the oldObject), that no object is larger
// than MaxObjectBytes, and that each names the kind of the request.
func checkObjects(req *admissionv1.AdmissionRequest) *httpError {
	obj, old := req.Object.Raw, req.OldObject.Raw
	if req.Operation == admissionv1.Delete {
		if isNull(old) {
			return badRequest("DELETE request has no oldObject")
		}
	} else if isNull(obj) {
		return badRequest("%s request has no object", req.Operation)
	}
	for _, o := range []struct {
		field string
		raw   []byte
	}{{"object", obj}, {"oldObject", old}} {
		if isNull(o.raw) {
			continue
		}
		if len(o.raw) > MaxObjectBytes {
			return badRequest("%s is %d bytes, more than the %d the API server accepts", o.field, len(o.raw), MaxObjectBytes)
		}
		var tm typeMeta
		if err := json.Unmarshal(o.raw, &tm); err != nil {
			return badRequest("%s is not a Kubernetes object: %w", o.field, err)
		}
		gv, err := schema.ParseGroupVersion(tm.APIVersion)
		if err != nil || tm.Kind == "" || tm.APIVersion == "" {
			return badRequest("unknown kind: %s has apiVersion %q, kind %q", o.field, tm.APIVersion, tm.Kind)
		}
		if gv.Group != req.Kind.Group || tm.Kind != req.Kind.Kind {
			return badRequest("unknown kind: %s is a %s, the request is for a %s", o.field,
				gv.WithKind(tm.Kind), schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind})
		}
	}
	return nil
}

func isNull(raw []byte) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// writeError answers a request the webhook cannot judge with its HTTP
// status and a Status body giving the reason.
func writeError(w http.ResponseWriter, herr *httpError) {
	st := metav1.Status{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   metav1.StatusFailure,
		Message:  herr.Error(),
		Reason:   reasonFor(herr.code),
		Code:     int32(herr.code),
	}
	body, err := json.Marshal(st)
	if err != nil {
		http.Error(w, herr.Error(), herr.code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(herr.code)
	_, _ = w.Write(body)
}

func reasonFor(code int) metav1.StatusReason {
	switch code {
	case http.StatusBadRequest:
		return metav1.StatusReasonBadRequest
	case http.StatusMethodNotAllowed:
		return metav1.StatusReasonMethodNotAllowed
	case http.StatusGatewayTimeout:
		return metav1.StatusReasonTimeout
	case http.StatusServiceUnavailable:
		return metav1.StatusReasonServiceUnavailable
	default:
		return metav1.StatusReasonInternalError
	}
}

// readReviewOrRefuse reads the AdmissionReview of r. One that cannot be
// read is answered with its HTTP error and logged at V(1); it returns nil.
func readReviewOrRefuse(w http.ResponseWriter, r *http.Request, log logr.Logger) *admissionv1.AdmissionReview {
	ar, herr := readReview(r)
	if herr != nil {
		log.V(1).Info("Bad admission request", "code", herr.code, "error", herr.Error())
		writeError(w, herr)
		return nil
	}
	return ar
}

// answer answers the request of ar with resp, logging a failure to write.
func answer(w http.ResponseWriter, ar *admissionv1.AdmissionReview, resp *admissionv1.AdmissionResponse, log logr.Logger) {
	resp.UID = ar.Request.UID
	if err := writeResponse(w, ar.APIVersion, resp); err != nil {
		log.Error(err, "Could not answer an admission request", requestKeys(ar.Request)...)
	}
}

// writeResponse answers with an AdmissionReview of the request's version.
func writeResponse(w http.ResponseWriter, apiVersion string, resp *admissionv1.AdmissionResponse) error {
	out := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "AdmissionReview"},
		Response: resp,
	}
	body, err := json.Marshal(&out)
	if err != nil {
		return fmt.Errorf("encoding the response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("writing the response: %w", err)
	}
	return nil
}

// errorCode is the HTTP status a review error is answered with.
func errorCode(err error) int {
	if herr, ok := errors.AsType[*httpError](err); ok {
		return herr.code
	}
	return http.StatusInternalServerError
}
