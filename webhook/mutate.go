package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/mutation"
)

// MutatePath is where the mutating webhook is served.
const MutatePath = "/v1/mutate"

// Mutator mutates objects; *mutation.System is one.
type Mutator interface {
	Mutate(ctx context.Context, obj *unstructured.Unstructured, ns *corev1.Namespace, source string, op mutation.Operation) (bool, error)
}

// MutationHandler serves /v1/mutate: it applies the mutators to the object
// of a CREATE or UPDATE request and answers with a JSON patch, as
// Gatekeeper's mutating webhook does. A mutation that fails (a mutator
// that does not match the object's shape, a set that never converges)
// refuses the request with the error, as Gatekeeper's does.
type MutationHandler struct {
	mutator Mutator
	opts    HandlerOptions // Timeout defaulted
	metrics *MutationMetrics
}

// NewMutationHandler builds the /v1/mutate handler around a Mutator. Of
// the options, it reads Namespaces, Namespace, Excluded (namespaces the
// Config excludes from mutation-webhook), ServiceAccount, Timeout, Ready
// and Log.
func NewMutationHandler(m Mutator, o HandlerOptions, metrics *MutationMetrics) *MutationHandler {
	if o.Timeout <= 0 {
		o.Timeout = time.Duration(DefaultMutationTimeoutSeconds) * time.Second
	}
	return &MutationHandler{mutator: m, opts: o, metrics: metrics}
}

// ServeHTTP answers one AdmissionReview.
func (h *MutationHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ar := readReviewOrRefuse(w, r, h.opts.Log)
	if ar == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout(r, h.opts.Timeout))
	defer cancel()
	resp, outcome, err := h.mutate(ctx, ar.Request)
	if err != nil {
		herr := &httpError{code: errorCode(err), err: err}
		if herr.code >= http.StatusInternalServerError && herr.code != http.StatusServiceUnavailable {
			h.opts.Log.Error(err, "Could not mutate an admission request", requestKeys(ar.Request)...)
		}
		writeError(w, herr)
		h.metrics.observe(MutationError, time.Since(start))
		return
	}
	answer(w, ar, resp, h.opts.Log)
	if outcome != "" {
		h.metrics.observe(outcome, time.Since(start))
	}
}

// mutate answers one request; outcome is its mutation_status label, ""
// for the requests Gatekeeper does not count either.
func (h *MutationHandler) mutate(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string, error) {
	if h.opts.ServiceAccount != "" && req.UserInfo.Username == h.opts.ServiceAccount {
		return allowed("Gatekeeper does not self-manage"), "", nil
	}
	op := mutation.Operation(req.Operation)
	if !slices.Contains(mutation.Supported, op) {
		return allowed("Mutating only on create or update"), "", nil
	}
	if mutation.IsGatekeeperGroup(req.Kind.Group) {
		return allowed("Not mutating gatekeeper resources"), "", nil
	}
	isNamespace := req.Kind.Group == "" && req.Kind.Kind == "Namespace"
	nsName := req.Namespace
	if isNamespace {
		nsName = req.Name
	}
	if h.opts.Namespace != "" && nsName == h.opts.Namespace {
		return allowed(fmt.Sprintf("namespace %q is the manager's own", nsName)), MutationSkip, nil
	}
	if nsName != "" && h.opts.Excluded != nil && h.opts.Excluded(nsName) {
		return allowed("Namespace is set to be ignored by Gatekeeper config"), MutationSkip, nil
	}
	if h.opts.Ready != nil {
		if err := h.opts.Ready(); err != nil {
			return nil, "", &httpError{code: http.StatusServiceUnavailable, err: fmt.Errorf("not ready: %w", err)}
		}
	}
	obj, herr := decodeObject(req)
	if herr != nil {
		return nil, "", herr
	}
	var ns *corev1.Namespace
	switch {
	case isNamespace:
		// A Namespace is matched as its own namespace.
		ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: obj.GetName(), Labels: obj.GetLabels()}}
	case req.Namespace != "" && h.opts.Namespaces != nil:
		var err error
		if ns, err = h.opts.Namespaces(ctx, req.Namespace); err != nil {
			return nil, "", err
		}
	}
	// The request names the namespace when the object does not (yet):
	// match and fromMetadata read it; it is put back before the patch.
	if !isNamespace {
		obj.SetNamespace(req.Namespace)
	}
	// Mutate leaves obj.Object alone and puts the mutated copy in its
	// place: the patch is the difference, the namespace set on both.
	orig := obj.Object
	changed, err := h.mutator.Mutate(ctx, obj, ns, engine.SourceOriginal, op)
	if err != nil && ctx.Err() != nil {
		// Out of time: no verdict on the object, a failure of the
		// webhook, which the failurePolicy decides.
		return nil, "", &httpError{code: http.StatusGatewayTimeout, err: fmt.Errorf("mutation did not finish in time: %w", err)}
	}
	if err != nil {
		h.opts.Log.Error(err, "Mutation failed", requestKeys(req)...)
		return &admissionv1.AdmissionResponse{
			Allowed: false,
			Result:  &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: err.Error()},
		}, MutationError, nil
	}
	if !changed {
		return allowed("Resource was not mutated"), MutationSuccess, nil
	}
	resp := allowed("")
	if ops := diffPatch(orig, obj.Object, "", nil); len(ops) > 0 {
		body, err := json.Marshal(ops)
		if err != nil {
			return nil, "", fmt.Errorf("encoding the patch: %w", err)
		}
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = body, &pt
	}
	return resp, MutationSuccess, nil
}

// decodeObject decodes the request's object, checking what checkObjects
// checks for /v1/admit (present, within MaxObjectBytes, of the request's
// kind) from the decoded object rather than from another pass over it.
func decodeObject(req *admissionv1.AdmissionRequest) (*unstructured.Unstructured, *httpError) {
	raw := req.Object.Raw
	if isNull(raw) {
		return nil, badRequest("%s request has no object", req.Operation)
	}
	if len(raw) > MaxObjectBytes {
		return nil, badRequest("object is %d bytes, more than the %d the API server accepts", len(raw), MaxObjectBytes)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return nil, badRequest("object is not a Kubernetes object: %w", err)
	}
	gvk := obj.GroupVersionKind()
	if gvk.Group != req.Kind.Group || gvk.Kind != req.Kind.Kind {
		return nil, badRequest("unknown kind: object is a %s, the request is for a %s", gvk,
			schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind})
	}
	return obj, nil
}
