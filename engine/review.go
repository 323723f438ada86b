package engine

import (
	"encoding/json"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Errors returned for reviews that cannot be judged.
var (
	ErrNoObject       = errors.New("request has neither object nor oldObject")
	ErrOldObjectIsNil = errors.New("DELETE request has no oldObject")
	ErrBadObject      = errors.New("object is not a valid Kubernetes object")
)

// Admission is one admission request to review, as the webhook and
// AdmissionReview suite cases see it. Namespace is the request's Namespace
// object when known; Source defaults to Original.
type Admission struct {
	Request   *admissionv1.AdmissionRequest
	Namespace *corev1.Namespace
	Source    string
	// Trace records an evaluation trace for this review only, returned in
	// Response.Trace (Config spec.validation.traces).
	Trace bool
}

// Object is one stored object to review, as the audit and the CLI see it.
// Namespace is its Namespace object when known.
type Object struct {
	Object    *unstructured.Unstructured
	Namespace *corev1.Namespace
	Source    string
	// ListMatched makes Response.Matched list the constraints that matched
	// the object, violated or not (the audit's pass results).
	ListMatched bool
}

// ReviewInput is what Engine.Review judges: an *Admission or an *Object.
type ReviewInput interface {
	// toReview builds the review handed to the drivers, and reports
	// whether this review alone asks for a trace.
	toReview() (r *review, trace bool, err error)
}

var (
	_ ReviewInput = (*Admission)(nil)
	_ ReviewInput = (*Object)(nil)
)

func (a *Admission) toReview() (*review, bool, error) {
	if a == nil {
		return nil, false, fmt.Errorf("%w: nil *Admission", ErrNoObject)
	}
	r, err := newAdmissionReview(a.Request, a.Namespace, a.Source)
	return r, a.Trace, err
}

func (o *Object) toReview() (*review, bool, error) {
	if o == nil {
		return nil, false, fmt.Errorf("%w: nil *Object", ErrNoObject)
	}
	r, err := newObjectReview(o.Object, o.Namespace, o.Source)
	if r != nil {
		r.listMatched = o.ListMatched
	}
	return r, false, err
}

// review is what the engine hands the drivers: its JSON is
// input.review, and it carries the parsed objects so that matchers do not
// decode the request again for every constraint.
type review struct {
	admissionv1.AdmissionRequest

	obj, oldObj *unstructured.Unstructured
	namespace   *corev1.Namespace
	source      string
	process     string
	// listMatched asks the review to record in matched every constraint
	// that matched.
	listMatched bool
	matched     []*unstructured.Unstructured
}

// ReviewWithoutObjects is the review without its objects, which the
// driver converts from obj and oldObj instead of parsing their JSON again
// (regodriver.DecodedReview).
func (r *review) ReviewWithoutObjects() any {
	req := r.AdmissionRequest
	req.Object, req.OldObject = runtime.RawExtension{}, runtime.RawExtension{}
	return &req
}

// DecodedObjects are review.object and review.oldObject, decoded: for a
// DELETE both are the object deleted (see newAdmissionReview).
func (r *review) DecodedObjects() (object, oldObject map[string]any) {
	if r.obj != nil {
		object = r.obj.Object
	}
	if r.oldObj != nil {
		oldObject = r.oldObj.Object
	}
	return object, oldObject
}

// NamespaceObject is the review's Namespace, namespaceObject in CEL.
func (r *review) NamespaceObject() *corev1.Namespace { return r.namespace }

// GetAdmissionRequest is the request, which the CEL driver reads.
func (r *review) GetAdmissionRequest() *admissionv1.AdmissionRequest {
	return &r.AdmissionRequest
}

func newAdmissionReview(req *admissionv1.AdmissionRequest, ns *corev1.Namespace, source string) (*review, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: no request", ErrNoObject)
	}
	r := &review{AdmissionRequest: *req, namespace: ns, source: source}
	var err error
	if r.obj, err = decodeRaw(r.Object, "object"); err != nil {
		return nil, err
	}
	if r.oldObj, err = decodeRaw(r.OldObject, "oldObject"); err != nil {
		return nil, err
	}
	if r.Operation == admissionv1.Delete {
		// A DELETE is judged on what is being deleted.
		if r.oldObj == nil {
			return nil, ErrOldObjectIsNil
		}
		r.Object = r.OldObject
		r.obj = r.oldObj
	}
	if r.obj == nil && r.oldObj == nil {
		return nil, ErrNoObject
	}
	fillRequestMeta(r, r.obj)
	if r.obj == nil {
		fillRequestMeta(r, r.oldObj)
	}
	return r, nil
}

// fillRequestMeta completes kind, name and namespace from the object when a
// hand-written AdmissionReview (as in suites) leaves them out.
func fillRequestMeta(r *review, obj *unstructured.Unstructured) {
	if obj == nil {
		return
	}
	if r.Kind.Kind == "" {
		gvk := obj.GroupVersionKind()
		r.Kind = metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind}
	}
	if r.Name == "" {
		r.Name = obj.GetName()
	}
	if r.Namespace == "" && !IsNamespace(obj) {
		r.Namespace = obj.GetNamespace()
	}
}

func newObjectReview(obj *unstructured.Unstructured, ns *corev1.Namespace, source string) (*review, error) {
	if obj == nil || obj.Object == nil {
		return nil, ErrNoObject
	}
	raw, err := obj.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadObject, err)
	}
	gvk := obj.GroupVersionKind()
	r := &review{
		AdmissionRequest: admissionv1.AdmissionRequest{
			Kind:   metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			Name:   obj.GetName(),
			Object: runtime.RawExtension{Raw: raw},
		},
		obj:       obj,
		namespace: ns,
		source:    source,
	}
	if !IsNamespace(obj) {
		r.Namespace = obj.GetNamespace()
	}
	return r, nil
}

func decodeRaw(ext runtime.RawExtension, field string) (*unstructured.Unstructured, error) {
	raw := ext.Raw
	if len(raw) == 0 {
		if ext.Object == nil {
			return nil, nil
		}
		var err error
		if raw, err = json.Marshal(ext.Object); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBadObject, field, err)
		}
	}
	if string(raw) == "null" {
		return nil, nil
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadObject, field, err)
	}
	return u, nil
}

// namespaceMap is the Namespace as input.review.namespaceObject sees it.
func namespaceMap(ns *corev1.Namespace) (map[string]any, error) {
	if ns == nil {
		return nil, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ns)
	if err != nil {
		return nil, fmt.Errorf("converting Namespace %q: %w", ns.Name, err)
	}
	if _, ok := m["apiVersion"]; !ok {
		m["apiVersion"] = "v1"
		m["kind"] = "Namespace"
	}
	return m, nil
}

// NamespaceFromUnstructured converts a Namespace read from YAML or the API.
func NamespaceFromUnstructured(u *unstructured.Unstructured) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ns); err != nil {
		return nil, fmt.Errorf("converting Namespace %q: %w", u.GetName(), err)
	}
	return ns, nil
}
