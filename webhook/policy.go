package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/engine/celdriver"
	"github.com/portcullis-dev/portcullis/expansion"
	"github.com/portcullis-dev/portcullis/mutation"
)

// AdmitPolicyPath is where ConstraintTemplates, constraints, mutators and
// ExpansionTemplates are checked.
const AdmitPolicyPath = "/v1/admitpolicy"

// ConstraintGroup is the API group of every constraint kind.
const ConstraintGroup = "constraints.gatekeeper.sh"

// ConstraintValidator checks constraints against the templates loaded;
// *engine.Engine is one.
type ConstraintValidator interface {
	ValidateConstraint(u *unstructured.Unstructured) error
	TemplateKinds() []string
}

// PolicyHandler serves /v1/admitpolicy: it refuses, at kubectl apply, a
// ConstraintTemplate whose Rego does not compile (with the compiler's
// message, line and column), a constraint whose parameters do not fit
// its template's schema or whose enforcement action is unknown (with the
// field path), and a mutator that does not compile (with the field path).
// Gatekeeper only reports the first two later, in status.
type PolicyHandler struct {
	constraints ConstraintValidator
	engineOpts  engine.Options
	timeout     time.Duration
	log         logr.Logger
}

// NewPolicyHandler builds the /v1/admitpolicy handler. Templates are
// compiled in a scratch engine built with engineOpts, so that the running
// engine is never touched; constraints are checked by cv, the running
// engine, which holds their templates.
func NewPolicyHandler(cv ConstraintValidator, engineOpts engine.Options, timeout time.Duration, log logr.Logger) *PolicyHandler {
	if timeout <= 0 {
		timeout = DefaultTimeoutSeconds * time.Second
	}
	return &PolicyHandler{constraints: cv, engineOpts: engineOpts, timeout: timeout, log: log}
}

// ServeHTTP answers one AdmissionReview for a template or a constraint.
func (h *PolicyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ar := readReviewOrRefuse(w, r, h.log)
	if ar == nil {
		return
	}
	req := ar.Request
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout(r, h.timeout))
	defer cancel()
	resp, err := h.admit(ctx, req)
	if err != nil {
		herr := &httpError{code: errorCode(err), err: err}
		if herr.code >= http.StatusInternalServerError {
			h.log.Error(err, "Could not check a policy object", requestKeys(req)...)
		}
		writeError(w, herr)
		return
	}
	answer(w, ar, resp, h.log)
}

func (h *PolicyHandler) admit(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return allowed(""), nil
	}
	if req.SubResource != "" {
		return allowed("subresource"), nil
	}
	if !isPolicy(req) {
		return allowed("not a ConstraintTemplate, a constraint, a mutator or an ExpansionTemplate"), nil
	}
	isTemplate := req.Kind.Group == engine.TemplateGroup && req.Kind.Kind == "ConstraintTemplate"
	isMutator := req.Kind.Group == mutationsv1.Group
	isExpansion := req.Kind.Group == expansion.Group && req.Kind.Kind == expansion.Kind
	if herr := checkObjects(req); herr != nil {
		return nil, herr
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(req.Object.Raw); err != nil {
		return nil, badRequest("object is not a Kubernetes object: %w", err)
	}
	if isTemplate {
		return h.checkTemplate(ctx, u)
	}
	if isMutator {
		return checkMutator(u), nil
	}
	if isExpansion {
		return checkExpansionTemplate(u), nil
	}
	return h.checkConstraint(u), nil
}

// isPolicy reports whether req is for a ConstraintTemplate, a constraint,
// a mutator or an ExpansionTemplate, which PolicyHandler checks.
func isPolicy(req *admissionv1.AdmissionRequest) bool {
	return (req.Kind.Group == engine.TemplateGroup && req.Kind.Kind == "ConstraintTemplate") ||
		req.Kind.Group == mutationsv1.Group ||
		(req.Kind.Group == expansion.Group && req.Kind.Kind == expansion.Kind) ||
		req.Kind.Group == ConstraintGroup
}

// checkTemplate compiles the template on its own, as the manager will.
func (h *PolicyHandler) checkTemplate(ctx context.Context, u *unstructured.Unstructured) (*admissionv1.AdmissionResponse, error) {
	ct, err := engine.ParseTemplate(u)
	if err != nil {
		return invalid(u, "spec", err), nil
	}
	scratch, err := engine.New(h.engineOpts)
	if err != nil {
		return nil, fmt.Errorf("creating an engine to compile ConstraintTemplate %q: %w", u.GetName(), err)
	}
	if err := scratch.AddTemplate(ctx, ct); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("compiling ConstraintTemplate %q: %w", u.GetName(), err)
		}
		return invalid(u, "spec.targets", err), nil
	}
	if _, err := scratch.CreateCRD(ctx, ct); err != nil {
		return invalid(u, "spec.crd", err), nil
	}
	resp := allowed("")
	if celdriver.CodeIndex(ct) >= 0 {
		// What of its CEL is ignored, as Gatekeeper ignores it too.
		if src, _, err := celdriver.TemplateSource(ct); err == nil {
			resp.Warnings = src.Ignored
		}
	}
	return resp, nil
}

// checkExpansionTemplate refuses an ExpansionTemplate that the expansion
// system would refuse, as Gatekeeper's webhook does (ValidateTemplate).
func checkExpansionTemplate(u *unstructured.Unstructured) *admissionv1.AdmissionResponse {
	t, err := expansion.FromUnstructured(u)
	if err != nil {
		return invalid(u, "spec", err)
	}
	if err := t.Validate(); err != nil {
		field := "spec"
		if fe, ok := errors.AsType[*expansion.FieldError](err); ok {
			field = fe.Field
		}
		return invalid(u, field, err)
	}
	return allowed("")
}

// checkConstraint validates a constraint against its loaded template.
func (h *PolicyHandler) checkConstraint(u *unstructured.Unstructured) *admissionv1.AdmissionResponse {
	if err := engine.ValidateEnforcementAction(u); err != nil {
		return invalid(u, "spec", err)
	}
	if !slices.Contains(h.constraints.TemplateKinds(), u.GetKind()) {
		// The CRD exists, so the template does; this replica has not
		// loaded it (yet), or it does not compile. Its status says which.
		resp := allowed("")
		resp.Warnings = []string{fmt.Sprintf("the ConstraintTemplate of kind %s is not loaded: the parameters of %s %q were not checked", u.GetKind(), u.GetKind(), u.GetName())}
		return resp
	}
	if err := h.constraints.ValidateConstraint(u); err != nil {
		return invalid(u, "spec", err)
	}
	return allowed("")
}

// checkMutator compiles a mutator as the manager will: a malformed
// location, a value of the wrong type, an invalid image part, externalData
// and the like are refused naming the field.
func checkMutator(u *unstructured.Unstructured) *admissionv1.AdmissionResponse {
	if !mutation.IsMutator(u.GroupVersionKind()) {
		return allowed("not a mutator kind")
	}
	if _, err := mutation.New(u); err != nil {
		field := mutation.Field(err)
		if field == "" {
			field = "spec"
		}
		return invalid(u, field, errors.New(strings.TrimPrefix(err.Error(), field+": ")))
	}
	return allowed("")
}

// invalid refuses an object with 422 Invalid and one cause: for a template
// whose Rego does not compile, its field, line and column; otherwise field
// and the error. kubectl prints the causes of an Invalid answer, not its
// message, so there must be one.
func invalid(u *unstructured.Unstructured, field string, err error) *admissionv1.AdmissionResponse {
	gvk := u.GroupVersionKind()
	details := &metav1.StatusDetails{Group: gvk.Group, Kind: gvk.Kind, Name: u.GetName()}
	cause := metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: field, Message: err.Error()}
	if ce, ok := errors.AsType[*engine.CompileError](err); ok {
		cause.Field, cause.Message = ce.Field, ce.Message
		if ce.Row > 0 {
			cause.Message = fmt.Sprintf("line %d, column %d: %s", ce.Row, ce.Col, ce.Message)
		}
	}
	details.Causes = []metav1.StatusCause{cause}
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  metav1.StatusReasonInvalid,
			Code:    http.StatusUnprocessableEntity,
			Message: err.Error(),
			Details: details,
		},
	}
}
