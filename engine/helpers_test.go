package engine

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Shared fixtures for the engine tests. Objects are built as unstructured
// JSON values only (no Go ints or []string), as the frameworks client needs.

type obj = map[string]any

// alwaysViolateRego violates for every object a constraint matches, so that
// "a violation came back" means "the constraint matched".
const alwaysViolateRego = "package x\n\nviolation[{\"msg\": \"bad\"}] { true }\n"

const alwaysKind = "K8sAlwaysViolate"

// fromYAML parses a YAML document into a JSON value.
func fromYAML(t testing.TB, s string) any {
	t.Helper()
	// The YAML-to-JSON decoder (unlike utilyaml.ToJSON) does not treat a
	// flow mapping such as "{a: b}" as JSON.
	var v any
	if err := utilyaml.NewYAMLToJSONDecoder(strings.NewReader(s)).Decode(&v); err != nil {
		t.Fatalf("parsing YAML %q: %v", s, err)
	}
	return toInt64(v)
}

// toInt64 turns the float64 numbers encoding/json yields into int64 where
// they are integral, as unstructured.UnmarshalJSON would.
func toInt64(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = toInt64(e)
		}
	case []any:
		for i, e := range x {
			x[i] = toInt64(e)
		}
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	}
	return v
}

// tmplOpt adjusts a template built by newTemplateU: spec is .spec and target
// is .spec.targets[0].
type tmplOpt func(spec, target obj)

func withOperations(ops ...string) tmplOpt {
	return func(_, target obj) {
		l := make([]any, len(ops))
		for i, o := range ops {
			l[i] = o
		}
		target["operations"] = l
	}
}

// withSchema sets spec.crd.spec.validation.openAPIV3Schema (YAML).
func withSchema(t testing.TB, schemaYAML string) tmplOpt {
	schema := fromYAML(t, schemaYAML)
	return func(spec, _ obj) {
		crdSpec := spec["crd"].(obj)["spec"].(obj)
		crdSpec["validation"] = obj{"openAPIV3Schema": schema}
	}
}

// withCode replaces the legacy rego field with code entries.
func withCode(code ...obj) tmplOpt {
	return func(_, target obj) {
		delete(target, "rego")
		l := make([]any, len(code))
		for i, c := range code {
			l[i] = c
		}
		target["code"] = l
	}
}

// withLegacyLibs sets the legacy targets[0].libs field.
func withLegacyLibs(libs ...string) tmplOpt {
	return func(_, target obj) {
		l := make([]any, len(libs))
		for i, s := range libs {
			l[i] = s
		}
		target["libs"] = l
	}
}

// newTemplateU builds an unstructured ConstraintTemplate of the given API
// version (v1, v1beta1, v1alpha1) with rego in the legacy rego field.
func newTemplateU(version, kind, rego string, opts ...tmplOpt) *unstructured.Unstructured {
	target := obj{"target": TargetName, "rego": rego}
	spec := obj{
		"crd":     obj{"spec": obj{"names": obj{"kind": kind}}},
		"targets": []any{target},
	}
	for _, o := range opts {
		o(spec, target)
	}
	return &unstructured.Unstructured{Object: obj{
		"apiVersion": TemplateGroup + "/" + version,
		"kind":       "ConstraintTemplate",
		"metadata":   obj{"name": strings.ToLower(kind)},
		"spec":       spec,
	}}
}

// newTemplate builds a versionless template from a v1 ConstraintTemplate.
func newTemplate(t testing.TB, kind, rego string, opts ...tmplOpt) *templates.ConstraintTemplate {
	t.Helper()
	ct, err := ParseTemplate(newTemplateU("v1", kind, rego, opts...))
	if err != nil {
		t.Fatalf("ParseTemplate(%s): %v", kind, err)
	}
	return ct
}

// newConstraint builds a constraints.gatekeeper.sh/v1beta1 constraint; spec
// is YAML (flow style is handy) and may be empty.
func newConstraint(t testing.TB, kind, name, specYAML string) *unstructured.Unstructured {
	t.Helper()
	spec := obj{}
	if strings.TrimSpace(specYAML) != "" {
		m, ok := fromYAML(t, specYAML).(map[string]any)
		if !ok {
			t.Fatalf("constraint spec %q is not a map", specYAML)
		}
		spec = m
	}
	return &unstructured.Unstructured{Object: obj{
		"apiVersion": "constraints.gatekeeper.sh/v1beta1",
		"kind":       kind,
		"metadata":   obj{"name": name},
		"spec":       spec,
	}}
}

// newEngine builds an engine holding the given templates.
func newEngine(t testing.TB, opts Options, tmpls ...*templates.ConstraintTemplate) *Engine {
	t.Helper()
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, ct := range tmpls {
		if err := e.AddTemplate(context.Background(), ct); err != nil {
			t.Fatalf("AddTemplate(%s): %v", ct.GetName(), err)
		}
	}
	return e
}

func mustAddConstraint(t testing.TB, e *Engine, c *unstructured.Unstructured) {
	t.Helper()
	if err := e.AddConstraint(context.Background(), c); err != nil {
		t.Fatalf("AddConstraint(%s): %v", c.GetName(), err)
	}
}

func mustAddData(t testing.TB, e *Engine, u *unstructured.Unstructured) {
	t.Helper()
	if err := e.AddData(context.Background(), u); err != nil {
		t.Fatalf("AddData(%s %s): %v", u.GetKind(), u.GetName(), err)
	}
}

// mustReview reviews in at ep and fails the test on error.
func mustReview(t testing.TB, e *Engine, in ReviewInput, ep string) []Violation {
	t.Helper()
	resp, err := e.Review(context.Background(), in, ep)
	if err != nil {
		t.Fatalf("Review at %s: %v", ep, err)
	}
	return resp.Violations
}

// messages returns the sorted messages of vs.
func messages(vs []Violation) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Message)
	}
	sort.Strings(out)
	return out
}

func labelsObj(labels map[string]string) obj {
	if len(labels) == 0 {
		return nil
	}
	m := obj{}
	for k, v := range labels {
		m[k] = v
	}
	return m
}

// newObj builds an object; apiVersion "v1" is the core group.
func newObj(apiVersion, kind, ns, name string, labels map[string]string) *unstructured.Unstructured {
	meta := obj{}
	if name != "" {
		meta["name"] = name
	}
	if ns != "" {
		meta["namespace"] = ns
	}
	if l := labelsObj(labels); l != nil {
		meta["labels"] = l
	}
	return &unstructured.Unstructured{Object: obj{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata":   meta,
	}}
}

func pod(ns, name string, labels map[string]string) *unstructured.Unstructured {
	return newObj("v1", "Pod", ns, name, labels)
}

func clusterRole(name string) *unstructured.Unstructured {
	return newObj("rbac.authorization.k8s.io/v1", "ClusterRole", "", name, nil)
}

func deployment(ns, name string, labels map[string]string) *unstructured.Unstructured {
	return newObj("apps/v1", "Deployment", ns, name, labels)
}

// namespaceU is a Namespace as an unstructured object (to review or sync).
func namespaceU(name string, labels map[string]string) *unstructured.Unstructured {
	return newObj("v1", "Namespace", "", name, labels)
}

// namespace is a Namespace as passed alongside a review.
func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}
}

func rawOf(t testing.TB, u *unstructured.Unstructured) runtime.RawExtension {
	t.Helper()
	if u == nil {
		return runtime.RawExtension{}
	}
	b, err := u.MarshalJSON()
	if err != nil {
		t.Fatalf("marshaling %s: %v", u.GetName(), err)
	}
	return runtime.RawExtension{Raw: b}
}

// request builds an admission request for op on object/oldObject, with kind,
// name and namespace taken from whichever object is set.
func request(t testing.TB, op admissionv1.Operation, object, oldObject *unstructured.Unstructured) *admissionv1.AdmissionRequest {
	t.Helper()
	ref := object
	if ref == nil {
		ref = oldObject
	}
	gvk := ref.GroupVersionKind()
	req := &admissionv1.AdmissionRequest{
		UID:       "0000-1111",
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Name:      ref.GetName(),
		Namespace: ref.GetNamespace(),
		Operation: op,
		Object:    rawOf(t, object),
		OldObject: rawOf(t, oldObject),
	}
	if IsNamespace(ref) {
		// The API server names a Namespace's own name as the request's
		// namespace.
		req.Namespace = ref.GetName()
	}
	return req
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// equalStrings reports whether a and b hold the same strings in the same order.
var equalStrings = slices.Equal[[]string]
