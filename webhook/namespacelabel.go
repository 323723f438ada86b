package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AdmitLabelPath is where the ignore-label guard is served.
const AdmitLabelPath = "/v1/admitlabel"

// NamespaceLabelHandler serves /v1/admitlabel: only exempt namespaces may
// carry admission.gatekeeper.sh/ignore, which makes the API server skip
// /v1/admit for them. Anyone allowed to label a namespace could otherwise
// exempt it from every policy.
type NamespaceLabelHandler struct {
	exempt *Exemptions
	log    logr.Logger
}

// NewNamespaceLabelHandler builds the /v1/admitlabel handler.
func NewNamespaceLabelHandler(exempt *Exemptions, log logr.Logger) *NamespaceLabelHandler {
	return &NamespaceLabelHandler{exempt: exempt, log: log}
}

// ServeHTTP answers one AdmissionReview for a Namespace.
func (h *NamespaceLabelHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ar := readReviewOrRefuse(w, r, h.log)
	if ar == nil {
		return
	}
	resp, herr := h.admit(ar.Request)
	if herr != nil {
		h.log.V(1).Info("Bad admission request", append(requestKeys(ar.Request), "code", herr.code, "error", herr.Error())...)
		writeError(w, herr)
		return
	}
	answer(w, ar, resp, h.log)
}

func (h *NamespaceLabelHandler) admit(req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, *httpError) {
	if req.Kind.Group != "" || req.Kind.Kind != "Namespace" {
		return allowed("not a Namespace"), nil
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return allowed(""), nil
	}
	if herr := checkObjects(req); herr != nil {
		return nil, herr
	}
	var ns struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(req.Object.Raw, &ns); err != nil {
		return nil, badRequest("object is not a Namespace: %w", err)
	}
	name := ns.Metadata.Name
	if name == "" {
		name = req.Name
	}
	if _, ok := ns.Metadata.Labels[IgnoreLabel]; !ok || h.exempt.Exempt(name) {
		return allowed(""), nil
	}
	h.log.Info("Refused the ignore label on a namespace that is not exempt", requestKeys(req)...)
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result: &metav1.Status{
			Status: metav1.StatusFailure,
			Reason: metav1.StatusReasonForbidden,
			Code:   http.StatusForbidden,
			// Gatekeeper's text, word for word, then which namespace and why.
			Message: fmt.Sprintf("Only exempt namespace can have the %s label: namespace %q is not exempt (see --exempt-namespace, --exempt-namespace-prefix and --exempt-namespace-suffix)",
				IgnoreLabel, name),
		},
	}, nil
}
