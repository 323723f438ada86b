package expansion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/open-policy-agent/frameworks/constraint/pkg/instrumentation"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/engine"
)

// StatLabel labels the stats of a resultant's review with the template that
// generated it, as Gatekeeper's do.
const StatLabel = "Implied by"

// Engine reviews objects; *engine.Engine is one.
type Engine interface {
	Review(ctx context.Context, in engine.ReviewInput, enforcementPoint string) (*engine.Response, error)
	TemplateKinds() []string
}

// Reviewer is an Engine that also judges what objects expand into: it
// reviews an *engine.Admission or *engine.Object as its Engine does, then
// each of the object's resultants with source Generated, and adds their
// violations to the object's, as Gatekeeper's webhook, audit and gator do:
// the message prefixed with "[Implied by <template>] ", the enforcement
// action replaced by the template's override if it has one. With a nil
// System it is its Engine.
type Reviewer struct {
	Engine Engine
	System *System
}

var _ Engine = (*Reviewer)(nil)

// TemplateKinds lists the constraint kinds the Engine holds.
func (r *Reviewer) TemplateKinds() []string { return r.Engine.TemplateKinds() }

// Error is the failure of expanding an object, or of reviewing what it
// expands into. Review returns it with the object's own verdict, and the
// violations of the resultants it could review: a failed expansion drops
// no violation of the object itself.
type Error struct {
	Err error
}

func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Review judges in and what it expands into. When the expansion or the
// review of a resultant fails, it returns the response so far (in judged,
// with the resultants that could be reviewed) and an *Error.
func (r *Reviewer) Review(ctx context.Context, in engine.ReviewInput, enforcementPoint string) (*engine.Response, error) {
	resp, err := r.Engine.Review(ctx, in, enforcementPoint)
	if err != nil || r.System == nil {
		return resp, err
	}
	base, err := r.newBase(in)
	if err != nil {
		return resp, &Error{Err: err}
	}
	if base == nil {
		return resp, nil
	}
	resultants, err := r.System.Expand(ctx, base.obj, base.ns)
	if err != nil {
		return resp, &Error{Err: fmt.Errorf("expanding %s: %w", describe(base.obj), err)}
	}
	var errs []error
	for i := range resultants {
		res := &resultants[i]
		rin, err := base.input(res.Object)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rresp, err := r.Engine.Review(ctx, rin, enforcementPoint)
		if err != nil {
			errs = append(errs, fmt.Errorf("reviewing %s, expanded from %s by ExpansionTemplate %q: %w", describe(res.Object), describe(base.obj), res.TemplateName, err))
			continue
		}
		Aggregate(resp, rresp, res)
	}
	if len(errs) > 0 {
		return resp, &Error{Err: errors.Join(errs...)}
	}
	return resp, nil
}

// Aggregate adds the violations of a resultant's review to its parent's, as
// Gatekeeper does: each message prefixed with "[Implied by <template>] ",
// the enforcement action replaced by the template's override if it has
// one; its stats labeled StatLabel: <template>, its trace appended.
func Aggregate(parent, child *engine.Response, res *Resultant) {
	prefix := "[" + StatLabel + " " + res.TemplateName + "] "
	for _, v := range child.Violations {
		v.Message = prefix + v.Message
		if a := res.EnforcementAction; a != "" {
			v.EnforcementAction = a
			v.Actions = []string{a}
		}
		parent.Violations = append(parent.Violations, v)
	}
	for _, s := range child.Stats {
		if s == nil {
			continue
		}
		c := *s
		c.Labels = append(append([]*instrumentation.Label(nil), s.Labels...), &instrumentation.Label{Name: StatLabel, Value: res.TemplateName})
		parent.Stats = append(parent.Stats, &c)
	}
	if child.Trace != "" {
		if parent.Trace != "" {
			parent.Trace += "\n\n"
		}
		parent.Trace += child.Trace
	}
}

// base is the object a review input expands, and how its resultants are
// reviewed.
type base struct {
	obj *unstructured.Unstructured
	ns  *corev1.Namespace
	// input builds the review input of a resultant.
	input func(*unstructured.Unstructured) (engine.ReviewInput, error)
}

// newBase returns what in expands: an Object's object, an Admission's
// object (its oldObject for a DELETE) with the request's kind and
// namespace, as Gatekeeper's webhook expands it. Nil when there is none.
func (r *Reviewer) newBase(in engine.ReviewInput) (*base, error) {
	switch o := in.(type) {
	case *engine.Object:
		if o == nil || o.Object == nil || !r.System.Expands(o.Object.GroupVersionKind()) {
			return nil, nil
		}
		return &base{obj: o.Object, ns: o.Namespace, input: func(u *unstructured.Unstructured) (engine.ReviewInput, error) {
			return &engine.Object{Object: u, Namespace: o.Namespace, Source: engine.SourceGenerated}, nil
		}}, nil
	case *engine.Admission:
		// Decoding the request's object again costs; most kinds expand
		// into nothing.
		if o == nil || o.Request == nil || !r.System.Expands(schema.GroupVersionKind(o.Request.Kind)) {
			return nil, nil
		}
		return admissionBase(o)
	default:
		return nil, nil
	}
}

func admissionBase(a *engine.Admission) (*base, error) {
	req := a.Request
	raw := req.Object.Raw
	if req.Operation == admissionv1.Delete {
		raw = req.OldObject.Raw
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: decoding the object to expand: %w", engine.ErrBadObject, err)
	}
	obj.SetNamespace(req.Namespace)
	obj.SetGroupVersionKind(schema.GroupVersionKind{Group: req.Kind.Group, Version: req.Kind.Version, Kind: req.Kind.Kind})
	return &base{obj: obj, ns: a.Namespace, input: func(u *unstructured.Unstructured) (engine.ReviewInput, error) {
		raw, err := json.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", describe(u), err)
		}
		gvk := u.GroupVersionKind()
		rreq := &admissionv1.AdmissionRequest{
			UID:       req.UID,
			Operation: req.Operation,
			Name:      u.GetName(),
			Namespace: u.GetNamespace(),
		}
		rreq.Kind.Group, rreq.Kind.Version, rreq.Kind.Kind = gvk.Group, gvk.Version, gvk.Kind
		if req.Operation == admissionv1.Delete {
			rreq.OldObject = runtime.RawExtension{Raw: raw}
		} else {
			rreq.Object = runtime.RawExtension{Raw: raw}
		}
		return &engine.Admission{Request: rreq, Namespace: a.Namespace, Source: engine.SourceGenerated, Trace: a.Trace}, nil
	}}, nil
}
