package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/mutation"
)

const constraintGroup = "constraints.gatekeeper.sh"

// ErrUnknownKind is returned for policy objects the engine cannot use.
var ErrUnknownKind = errors.New("unknown kind")

// policySet is what -f files hold: templates and constraints, loaded into
// an engine, and the objects to review.
type policySet struct {
	engine      *engine.Engine
	templates   int
	constraints int
	objects     []reviewItem
	// constraintObjs are the constraints loaded.
	constraintObjs []*unstructured.Unstructured
	// skipped are the templates left out by loadPolicySet's keep, with
	// their constraints.
	skipped            []string
	skippedConstraints int
	// mutation holds the mutators given, applied to the objects and to
	// what they expand into.
	mutation *mutation.Offline
}

// k8sNativeValidationUsage is the help of --enable-k8s-native-validation.
const k8sNativeValidationUsage = "run the K8sNativeValidation (CEL) code of templates that have both CEL and Rego, as Gatekeeper does by default; false runs their Rego (templates with only CEL run it either way)"

// reviewItem is one object to review, with where it was read from.
type reviewItem struct {
	source string
	obj    *unstructured.Unstructured // the object itself, or the request's object
	input  engine.ReviewInput         // *engine.Object or *engine.Admission
}

// loadPolicySet reads every -f path, adds templates first, then constraints,
// then every other object as inventory, so referential policies can see them.
// Templates that keep (when not nil) refuses are left out with their
// constraints, and listed in skipped.
func loadPolicySet(ctx context.Context, paths []string, stdin io.Reader, opts engine.Options, keep func(*templates.ConstraintTemplate) bool) (*policySet, error) {
	if len(paths) == 0 {
		return nil, errors.New("no input: give at least one -f FILE, DIR or -")
	}
	var docs []manifest.Doc
	for _, p := range paths {
		d, err := manifest.ReadPath(p, stdin)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return newPolicySet(ctx, docs, opts, keep)
}

// newPolicySet loads docs as loadPolicySet does.
func newPolicySet(ctx context.Context, docs []manifest.Doc, opts engine.Options, keep func(*templates.ConstraintTemplate) bool) (*policySet, error) {
	eng, err := engine.New(opts)
	if err != nil {
		return nil, err
	}
	ps := &policySet{engine: eng}
	// Mutators among the inputs mutate the other objects before they are
	// reviewed, as the mutating webhook would before the validating one.
	docs, off, err := splitMutators(docs)
	if err != nil {
		return nil, err
	}
	if err := mutateAll(ctx, off, docs, false); err != nil {
		return nil, err
	}
	ps.mutation = off
	var constraints, others []manifest.Doc
	skippedKinds := map[string]bool{}
	for _, d := range docs {
		gvk := d.Object.GroupVersionKind()
		switch gvk.Group {
		case engine.TemplateGroup:
			ct, err := engine.ParseTemplate(d.Object)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", d.Source, err)
			}
			if keep != nil && !keep(ct) {
				ps.skipped = append(ps.skipped, ct.GetName())
				skippedKinds[ct.Spec.CRD.Spec.Names.Kind] = true
				continue
			}
			if err := eng.AddTemplate(ctx, ct); err != nil {
				return nil, fmt.Errorf("%s: %w", d.Source, err)
			}
			ps.templates++
		case constraintGroup:
			constraints = append(constraints, d)
		default:
			others = append(others, d)
		}
	}
	kinds := map[string]bool{}
	for _, k := range eng.TemplateKinds() {
		kinds[k] = true
	}
	for _, d := range constraints {
		if skippedKinds[d.Object.GetKind()] {
			ps.skippedConstraints++
			continue
		}
		if !kinds[d.Object.GetKind()] {
			return nil, fmt.Errorf("%s: %w: constraint %q is a %s, and no template given defines that kind",
				d.Source, ErrUnknownKind, d.Object.GetName(), d.Object.GetKind())
		}
		if err := eng.AddConstraint(ctx, d.Object); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Source, err)
		}
		ps.constraints++
		ps.constraintObjs = append(ps.constraintObjs, d.Object)
	}
	for _, d := range others {
		item, err := toReviewItem(d)
		if err != nil {
			return nil, err
		}
		// Objects without a name yet (generateName only) cannot have an
		// inventory path; they are still reviewed.
		if _, ok := item.input.(*engine.Object); ok && d.Object.GetName() != "" {
			if err := eng.AddData(ctx, d.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", d.Source, err)
			}
		}
		ps.objects = append(ps.objects, item)
	}
	return ps, nil
}

func toReviewItem(d manifest.Doc) (reviewItem, error) {
	gvk := d.Object.GroupVersionKind()
	if gvk.Kind != "AdmissionReview" || gvk.Group != admissionv1.GroupName {
		return reviewItem{source: d.Source, obj: d.Object, input: &engine.Object{Object: d.Object, Source: engine.SourceOriginal}}, nil
	}
	var ar admissionv1.AdmissionReview
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(d.Object.Object, &ar, true); err != nil {
		return reviewItem{}, fmt.Errorf("%s: not a valid AdmissionReview: %w", d.Source, err)
	}
	if ar.Request == nil {
		return reviewItem{}, fmt.Errorf("%s: AdmissionReview has no request", d.Source)
	}
	raw := ar.Request.Object.Raw
	if raw == nil {
		raw = ar.Request.OldObject.Raw
	}
	if raw == nil {
		return reviewItem{}, fmt.Errorf("%s: AdmissionReview request has neither object nor oldObject", d.Source)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return reviewItem{}, fmt.Errorf("%s: AdmissionReview request object: %w", d.Source, err)
	}
	return reviewItem{source: d.Source, obj: obj, input: &engine.Admission{Request: ar.Request, Source: engine.SourceOriginal}}, nil
}

// splitMutators loads the mutators among docs and returns the other
// docs, copied so that mutating them leaves the caller's alone.
func splitMutators(docs []manifest.Doc) ([]manifest.Doc, *mutation.Offline, error) {
	off, rest, err := loadOffline(docs)
	if err != nil {
		return nil, nil, err
	}
	if off.Len() == 0 {
		return rest, off, nil
	}
	out := make([]manifest.Doc, len(rest))
	for i, d := range rest {
		d.Object = d.Object.DeepCopy()
		out[i] = d
	}
	return out, off, nil
}
