package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/internal/violations"
)

// AdmitPath is where the generic admission handler is served.
const AdmitPath = "/v1/admit"

// httpStatusWarning is the result code of an allowed response with
// warnings, as Gatekeeper answers.
const httpStatusWarning = 299

// Reviewer judges admission requests; *engine.Engine is one.
type Reviewer interface {
	Review(ctx context.Context, in engine.ReviewInput, enforcementPoint string) (*engine.Response, error)
}

// HandlerOptions configure an AdmissionHandler.
type HandlerOptions struct {
	// Namespaces looks up the Namespace of namespaced requests, for
	// namespaceSelector and input.review.namespaceObject. Nil leaves it to
	// the Namespaces synced into the engine.
	Namespaces NamespaceGetter
	// Namespace is the manager's own namespace, never judged (the managed
	// configurations leave it out too). The namespaces --exempt-namespace
	// names are judged unless they carry admission.gatekeeper.sh/ignore,
	// which the configurations' namespaceSelector skips, as in Gatekeeper:
	// the flags only allow that label (/v1/admitlabel).
	Namespace string
	// Trace reports whether a request by user on kind gvk is to be traced
	// (Config spec.validation.traces), and whether the request's object is
	// to be dumped with it. Nil: never.
	Trace func(user string, gvk schema.GroupVersionKind) (trace, dump bool)
	// Excluded reports namespaces the Config excludes from the webhook
	// (spec.match[].processes: [webhook]); they are allowed unjudged.
	Excluded func(namespace string) bool
	// ServiceAccount is the user name whose requests are always allowed.
	ServiceAccount string
	// Timeout bounds each review; the API server's own ?timeout= shortens
	// it. Default: DefaultTimeoutSeconds.
	Timeout time.Duration
	// MaxServingThreads bounds the reviews running at once: -1 means
	// GOMAXPROCS, 0 no bound.
	MaxServingThreads int
	// LogDenies logs every violation with Gatekeeper's keys; without it
	// dryrun ones are logged all the same.
	LogDenies bool
	// Events emits every violation as a Kubernetes Event
	// (--emit-admission-events); nil emits none.
	Events *violations.Recorder
	// Metrics records every request; nil records nothing.
	Metrics *Metrics
	// Ready reports whether the engine holds every policy (the manager's
	// Ready). Until it does, requests are answered 503, as a webhook that
	// is not there would be: judging them against half the policies would
	// let through what the rest refuse. Nil means always ready.
	Ready func() error
	// Policy, when set, checks ConstraintTemplates, constraints, mutators
	// and ExpansionTemplates as /v1/admitpolicy does before they are judged,
	// as Gatekeeper's single validation webhook does: a
	// ValidatingWebhookConfiguration without the check-policy webhook
	// (Gatekeeper's own) still refuses policies that cannot work.
	Policy *PolicyHandler
	// CheckPolicies reports whether Policy is to check them: not when the
	// deployed configuration has the check-policy webhook, which does.
	// Nil: always.
	CheckPolicies func(ctx context.Context) bool
	Log           logr.Logger
}

// AdmissionHandler serves /v1/admit: it judges any admission request with
// the engine at the validation.gatekeeper.sh enforcement point. Requests
// are judged concurrently; nothing on the request path takes a lock.
type AdmissionHandler struct {
	reviewer Reviewer
	opts     HandlerOptions // Timeout defaulted
	slots    *reviewSlots   // nil: no bound
	isReady  atomic.Bool    // Ready passed once; it stays so
	// shed counts requests turned away since shedLogged (unix ns).
	shed       atomic.Int64
	shedLogged atomic.Int64
}

// NewAdmissionHandler builds the /v1/admit handler around a Reviewer.
func NewAdmissionHandler(rv Reviewer, o HandlerOptions) *AdmissionHandler {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeoutSeconds * time.Second
	}
	n := o.MaxServingThreads
	if n < 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return &AdmissionHandler{reviewer: rv, opts: o, slots: newReviewSlots(n)}
}

// ServeHTTP answers one AdmissionReview.
func (h *AdmissionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ar := readReviewOrRefuse(w, r, h.opts.Log)
	if ar == nil {
		h.opts.Metrics.observe(DecisionError, false, time.Since(start))
		return
	}
	req := ar.Request
	dryRun := req.DryRun != nil && *req.DryRun
	resp, err := h.admit(r.Context(), req, requestTimeout(r, h.opts.Timeout))
	if err != nil {
		herr := &httpError{code: errorCode(err), err: err}
		switch {
		case herr.code == http.StatusServiceUnavailable:
			// Turned away, over capacity or not ready yet: an error log
			// with a stack for each would cost the most when there is
			// least to spare, so one line a second says how many.
			h.logShed(err)
		case herr.code >= http.StatusInternalServerError:
			h.opts.Log.Error(err, "Could not judge an admission request", requestKeys(req)...)
		default:
			h.opts.Log.V(1).Info("Bad admission request", append(requestKeys(req), "code", herr.code, "error", err.Error())...)
		}
		writeError(w, herr)
		h.opts.Metrics.observe(DecisionError, dryRun, time.Since(start))
		return
	}
	answer(w, ar, resp, h.opts.Log)
	h.opts.Metrics.observe(decisionOf(resp), dryRun, time.Since(start))
}

// logShed logs requests turned away with 503 (over capacity, or not
// ready), at most once a second, with how many since the last line and
// the last one's reason.
func (h *AdmissionHandler) logShed(err error) {
	n := h.shed.Add(1)
	now := time.Now().UnixNano()
	last := h.shedLogged.Load()
	if now-last < int64(time.Second) || !h.shedLogged.CompareAndSwap(last, now) {
		return
	}
	h.shed.Add(-n)
	h.opts.Log.Info("Turned admission requests away with 503", "count", n, "lastError", err.Error())
}

func decisionOf(resp *admissionv1.AdmissionResponse) string {
	switch {
	case !resp.Allowed:
		return DecisionDeny
	case len(resp.Warnings) > 0:
		return DecisionWarn
	default:
		return DecisionAllow
	}
}

// requestTimeout is the handler's timeout, shortened to the API server's
// ?timeout= when that is shorter, less a margin to answer in time.
func requestTimeout(r *http.Request, limit time.Duration) time.Duration {
	d := limit
	if q := r.URL.Query().Get("timeout"); q != "" {
		if t, err := time.ParseDuration(q); err == nil && t > 0 && t < d {
			d = t
		}
	}
	margin := min(d/10, 250*time.Millisecond)
	return d - margin
}

// admit judges one request. An error is answered with its HTTP status
// (errorCode): 400 for a request that cannot be judged, 500 otherwise.
func (h *AdmissionHandler) admit(ctx context.Context, req *admissionv1.AdmissionRequest, timeout time.Duration) (*admissionv1.AdmissionResponse, error) {
	if h.opts.ServiceAccount != "" && req.UserInfo.Username == h.opts.ServiceAccount {
		return allowed("Gatekeeper does not self-manage"), nil
	}
	// One deadline for all of it: the API server waits for the whole.
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if h.opts.Policy != nil && isPolicy(req) && (h.opts.CheckPolicies == nil || h.opts.CheckPolicies(ctx)) {
		resp, err := h.opts.Policy.admit(ctx, req)
		if err != nil || !resp.Allowed {
			return resp, err
		}
	}
	isNamespace := req.Kind.Group == "" && req.Kind.Kind == "Namespace"
	nsName := req.Namespace
	if isNamespace {
		nsName = req.Name
	}
	if h.opts.Namespace != "" && nsName == h.opts.Namespace {
		return allowed(fmt.Sprintf("namespace %q is the manager's own", nsName)), nil
	}
	if nsName != "" && h.opts.Excluded != nil && h.opts.Excluded(nsName) {
		return allowed("Namespace is set to be ignored by Gatekeeper config"), nil
	}
	if herr := checkObjects(req); herr != nil {
		return nil, herr
	}
	if err := h.checkReady(); err != nil {
		return nil, err
	}

	var ns *corev1.Namespace
	if h.opts.Namespaces != nil && req.Namespace != "" && !isNamespace {
		var err error
		if ns, err = h.opts.Namespaces(ctx, req.Namespace); err != nil {
			return nil, err
		}
	}
	if isNamespace && req.Namespace != "" {
		// As Gatekeeper: a Namespace's request is judged, logged and
		// reported with no namespace (CEL's request.namespace, Rego's
		// input.review.namespace), though the API server names the
		// Namespace itself there for some requests (server-side apply).
		r := *req
		r.Namespace = ""
		req = &r
	}
	release, err := h.slots.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	in := &engine.Admission{Request: req, Namespace: ns, Source: engine.SourceOriginal}
	var dump bool
	if h.opts.Trace != nil {
		gvk := schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind}
		in.Trace, dump = h.opts.Trace(req.UserInfo.Username, gvk)
	}
	res, err := h.reviewer.Review(ctx, in, engine.EnforcementPointWebhook)
	if err != nil {
		return h.expansionFailed(ctx, req, res, err, timeout)
	}
	if in.Trace {
		kv := []any{"uid", req.UID, "user", req.UserInfo.Username, "kind", req.Kind.Kind,
			"namespace", req.Namespace, "name", req.Name, "trace", res.Trace}
		if dump {
			kv = append(kv, "object", string(req.Object.Raw))
		}
		h.opts.Log.Info("Evaluation trace", kv...)
	}
	if ctx.Err() != nil {
		// The engine reports a canceled evaluation as a violation of
		// each constraint it did not finish; that is no verdict.
		return nil, fmt.Errorf("review did not finish within %s: %w", timeout, ctx.Err())
	}
	return h.verdict(req, res.Violations), nil
}

// expansionFailed answers a review that failed: when only the expansion
// failed (an *expansion.Error) and the object's own violations already
// deny it, the denial stands, with the failure as a warning; otherwise
// the error, as Gatekeeper fails a request it cannot expand, and the
// failure policy decides.
func (h *AdmissionHandler) expansionFailed(ctx context.Context, req *admissionv1.AdmissionRequest, res *engine.Response, err error, timeout time.Duration) (*admissionv1.AdmissionResponse, error) {
	var expErr *expansion.Error
	if res == nil || ctx.Err() != nil || !errors.As(err, &expErr) || !denies(res.Violations) {
		return nil, reviewError(ctx, err, timeout)
	}
	h.opts.Log.Error(err, "Expanding the object failed; denied by its own violations", requestKeys(req)...)
	resp := h.verdict(req, res.Violations)
	resp.Warnings = append(resp.Warnings, "expansion failed, only the object itself was judged: "+err.Error())
	return resp, nil
}

// denies tells whether a violation has the deny action.
func denies(vs []engine.Violation) bool {
	for i := range vs {
		if vs[i].HasAction(engine.ActionDeny) {
			return true
		}
	}
	return false
}

// checkReady answers 503 until the engine holds every policy.
func (h *AdmissionHandler) checkReady() error {
	if h.opts.Ready == nil || h.isReady.Load() {
		return nil
	}
	if err := h.opts.Ready(); err != nil {
		return &httpError{code: http.StatusServiceUnavailable, err: fmt.Errorf("not ready: %w", err)}
	}
	h.isReady.Store(true)
	return nil
}

// reviewError classifies an engine error: the request's fault (400) or
// the review's (500, with the reason).
func reviewError(ctx context.Context, err error, timeout time.Duration) error {
	switch {
	case errors.Is(err, engine.ErrBadObject), errors.Is(err, engine.ErrNoObject), errors.Is(err, engine.ErrOldObjectIsNil):
		return badRequest("%w", err)
	case ctx.Err() != nil:
		return fmt.Errorf("review did not finish within %s: %w", timeout, err)
	default:
		return fmt.Errorf("reviewing: %w", err)
	}
}

// verdict turns the violations into the response: every deny violation is
// a line of the refusal, every warn violation a warning, and dryrun ones
// are only logged.
func (h *AdmissionHandler) verdict(req *admissionv1.AdmissionRequest, vs []engine.Violation) *admissionv1.AdmissionResponse {
	var deny, warn []string
	for i := range vs {
		v := &vs[i]
		line := violationLine(v)
		for _, a := range v.Actions {
			switch a {
			case engine.ActionDeny:
				deny = append(deny, line)
			case engine.ActionWarn:
				warn = append(warn, line)
			}
		}
	}
	h.report(req, vs)
	if len(deny) > 0 {
		return &admissionv1.AdmissionResponse{
			Allowed:  false,
			Warnings: warn,
			Result: &metav1.Status{
				Status:  metav1.StatusFailure,
				Reason:  metav1.StatusReasonForbidden,
				Code:    http.StatusForbidden,
				Message: strings.Join(deny, "\n"),
			},
		}
	}
	resp := allowed("")
	if len(warn) > 0 {
		resp.Warnings = warn
		resp.Result.Code = httpStatusWarning
	}
	return resp
}

// violationLine is how a verdict names a violation: [<constraint>] <message>.
func violationLine(v *engine.Violation) string {
	name := ""
	if v.Constraint != nil {
		name = v.Constraint.GetName()
	}
	return "[" + name + "] " + v.Message
}

func allowed(reason string) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{
		Allowed: true,
		Result:  &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusOK, Message: reason},
	}
}

// report logs and emits the violations: with --log-denies each one as
// Gatekeeper logs it ("denied admission: <message>" with its keys, whatever
// the action), else the dryrun ones; with --emit-admission-events each as
// Events.
func (h *AdmissionHandler) report(req *admissionv1.AdmissionRequest, vs []engine.Violation) {
	if len(vs) == 0 {
		return
	}
	var meta *metav1.PartialObjectMetadata
	for i := range vs {
		v := &vs[i]
		logIt := h.opts.LogDenies || v.HasAction(engine.ActionDryrun)
		if !logIt && h.opts.Events == nil {
			continue
		}
		if meta == nil {
			meta = requestObjectMeta(req)
		}
		gv := newAdmissionViolation(req, meta, v)
		switch {
		case h.opts.LogDenies:
			h.opts.Log.Info("denied admission: "+v.Message, gv.AdmissionKeys()...)
		case logIt:
			h.opts.Log.Info("Dryrun violation: "+v.Message, gv.AdmissionKeys()...)
		}
		h.opts.Events.Admission(gv)
	}
}

// newAdmissionViolation describes a violation found at admission for the
// logs and Events. The resource is named by the request, else by its
// object (a CREATE may leave the name to the server).
func newAdmissionViolation(req *admissionv1.AdmissionRequest, meta *metav1.PartialObjectMetadata, v *engine.Violation) *violations.Violation {
	gv := &violations.Violation{
		Constraint:        v.Constraint,
		EnforcementAction: v.EnforcementAction,
		Message:           v.Message,
		Details:           violations.Details(v.Metadata, v.Details),
		Resource:          schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind},
		Namespace:         req.Namespace,
		Name:              req.Name,
		UID:               meta.UID,
		ResourceVersion:   meta.ResourceVersion,
		Username:          req.UserInfo.Username,
	}
	if v.EnforcementAction == engine.ActionScoped {
		gv.ScopedActions = v.Actions
	}
	if gv.Name == "" {
		gv.Name = meta.Name
	}
	return gv
}

// requestObjectMeta reads the metadata of the request's object (the old
// object for a DELETE); empty when there is none.
func requestObjectMeta(req *admissionv1.AdmissionRequest) *metav1.PartialObjectMetadata {
	meta := &metav1.PartialObjectMetadata{}
	raw := req.Object.Raw
	if len(raw) == 0 {
		raw = req.OldObject.Raw
	}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, meta) // the review has decoded it already; a failure leaves it empty
	}
	return meta
}

func requestKeys(req *admissionv1.AdmissionRequest) []any {
	return []any{
		"uid", req.UID, "operation", req.Operation,
		"kind", req.Kind.Kind, "group", req.Kind.Group, "subResource", req.SubResource,
		"namespace", req.Namespace, "name", req.Name, "user", req.UserInfo.Username,
	}
}
