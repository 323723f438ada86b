package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestParseTemplateVersions(t *testing.T) {
	for _, version := range []string{"v1", "v1beta1", "v1alpha1"} {
		t.Run(version, func(t *testing.T) {
			u := newTemplateU(version, "K8sVersioned", alwaysViolateRego, withOperations("CREATE"),
				withSchema(t, "{type: object, properties: {labels: {type: array, items: {type: string}}}}"))
			ct, err := ParseTemplate(u)
			if err != nil {
				t.Fatalf("ParseTemplate: %v", err)
			}
			if ct.GetName() != "k8sversioned" || ct.Spec.CRD.Spec.Names.Kind != "K8sVersioned" {
				t.Errorf("name %q kind %q", ct.GetName(), ct.Spec.CRD.Spec.Names.Kind)
			}
			if len(ct.Spec.Targets) != 1 {
				t.Fatalf("%d targets", len(ct.Spec.Targets))
			}
			tgt := ct.Spec.Targets[0]
			if tgt.Target != TargetName {
				t.Errorf("target %q", tgt.Target)
			}
			if len(tgt.Code) != 1 || tgt.Code[0].Engine != "Rego" {
				t.Errorf("legacy rego did not become a Rego code entry: %+v", tgt.Code)
			}
			if len(tgt.Operations) != 1 || string(tgt.Operations[0]) != "CREATE" {
				t.Errorf("operations %v", tgt.Operations)
			}
			v := ct.Spec.CRD.Spec.Validation
			if v == nil || v.OpenAPIV3Schema == nil || v.OpenAPIV3Schema.Properties["labels"].Type != "array" {
				t.Fatalf("schema not converted: %+v", v)
			}
			// legacySchema defaults to false in v1 and true before.
			wantLegacy := version != "v1"
			if v.LegacySchema == nil || *v.LegacySchema != wantLegacy {
				t.Errorf("legacySchema = %v, want %v", v.LegacySchema, wantLegacy)
			}

			// The template works end to end.
			e := newEngine(t, Options{}, ct)
			mustAddConstraint(t, e, newConstraint(t, "K8sVersioned", "c", "parameters: {labels: [a]}"))
			if vs := mustReview(t, e, objIn(pod("default", "p", nil)), EnforcementPointAudit); len(vs) != 1 {
				t.Errorf("got %q, want one violation", messages(vs))
			}
		})
	}
}

func TestParseTemplateErrors(t *testing.T) {
	twoTargets := newTemplateU("v1", "K8sTwo", alwaysViolateRego)
	targets := twoTargets.Object["spec"].(obj)["targets"].([]any)
	twoTargets.Object["spec"].(obj)["targets"] = append(targets, obj{"target": TargetName, "rego": alwaysViolateRego})

	noTargets := newTemplateU("v1", "K8sNone", alwaysViolateRego)
	noTargets.Object["spec"].(obj)["targets"] = []any{}

	wrongName := newTemplateU("v1", "K8sRequiredLabels", alwaysViolateRego)
	wrongName.SetName("required-labels")

	upperName := newTemplateU("v1", "K8sRequiredLabels", alwaysViolateRego)
	upperName.SetName("K8sRequiredLabels")

	noKind := newTemplateU("v1", "K8sNoKind", alwaysViolateRego)
	delete(noKind.Object["spec"].(obj)["crd"].(obj)["spec"].(obj)["names"].(obj), "kind")

	wrongTarget := newTemplateU("v1", "K8sTarget", alwaysViolateRego)
	wrongTarget.Object["spec"].(obj)["targets"].([]any)[0].(obj)["target"] = "validation.example.com"

	nullSource := newTemplateU("v1", "K8sNullSource", "", withCode(obj{"engine": "Rego", "source": nil}))
	missingSource := newTemplateU("v1", "K8sNullSource", "", withCode(obj{"engine": "Rego"}))

	wrongGroup := newTemplateU("v1", "K8sGroup", alwaysViolateRego)
	wrongGroup.SetAPIVersion("templates.example.com/v1")

	wrongVersion := newTemplateU("v2", "K8sVersion", alwaysViolateRego)

	tests := []struct {
		name string
		u    *unstructured.Unstructured
		want []string // substrings of the error
	}{
		{"name is not lower(kind)", wrongName, []string{`"required-labels"`, `"K8sRequiredLabels"`, `"k8srequiredlabels"`}},
		{"name keeps upper case", upperName, []string{`"K8sRequiredLabels"`, `"k8srequiredlabels"`}},
		{"two targets", twoTargets, []string{"exactly one target", "2"}},
		{"no targets", noTargets, []string{"exactly one target", "0"}},
		{"no kind", noKind, []string{"spec.crd.spec.names.kind"}},
		{"unknown target", wrongTarget, []string{"validation.example.com", TargetName}},
		{"null source", nullSource, []string{"spec.targets[0].code[0].source"}},
		{"missing source", missingSource, []string{"spec.targets[0].code[0].source"}},
		{"not a ConstraintTemplate", wrongGroup, []string{"templates.example.com"}},
		{"unknown version", wrongVersion, []string{`"v2"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct, err := ParseTemplate(tc.u)
			if err == nil {
				t.Fatalf("ParseTemplate accepted the template: %+v", ct)
			}
			if !errors.Is(err, ErrInvalidTemplate) {
				t.Errorf("error %q is not ErrInvalidTemplate", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestAddTemplateRejectsInvalidVersionless checks that templates built in
// Go, without ParseTemplate, get the same checks as parsed ones and never
// reach the frameworks client's nil dereferences.
func TestAddTemplateRejectsInvalidVersionless(t *testing.T) {
	valid := func() *templates.ConstraintTemplate { return newTemplate(t, "K8sGo", alwaysViolateRego) }
	tests := []struct {
		name   string
		mutate func(ct *templates.ConstraintTemplate)
		want   string
	}{
		{"name mismatch", func(ct *templates.ConstraintTemplate) { ct.SetName("other") }, `"other"`},
		{"two targets", func(ct *templates.ConstraintTemplate) {
			ct.Spec.Targets = append(ct.Spec.Targets, ct.Spec.Targets[0])
		}, "exactly one target"},
		{"nil code source", func(ct *templates.ConstraintTemplate) {
			ct.Spec.Targets[0].Code = []templates.Code{{Engine: "Rego", Source: nil}}
		}, "source"},
		{"unknown engine only", func(ct *templates.ConstraintTemplate) {
			ct.Spec.Targets[0].Rego = ""
			ct.Spec.Targets[0].Code = []templates.Code{{Engine: "Wasm", Source: &templates.Anything{Value: map[string]any{}}}}
		}, "spec.targets[0].code has no Rego or K8sNativeValidation entry, only Wasm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct := valid()
			tc.mutate(ct)
			e := newEngine(t, Options{})
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
						t.Errorf("AddTemplate panicked: %v", r)
					}
				}()
				err = e.AddTemplate(context.Background(), ct)
			}()
			if err == nil {
				t.Fatal("AddTemplate accepted the template")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if _, err := e.CreateCRD(context.Background(), ct); err == nil && tc.name != "nil code source" {
				t.Error("CreateCRD accepted the template")
			}
		})
	}
}

func TestRegoCompileErrors(t *testing.T) {
	tests := []struct {
		name     string
		opts     []tmplOpt
		rego     string
		wantRow  int
		wantText []string
	}{
		{
			name:     "parse error",
			rego:     "package x\n\nviolation[{\"msg\": msg}] {\n  msg := \n}\n",
			wantRow:  5,
			wantText: []string{"rego_parse_error"},
		},
		{
			name:     "unsafe variable",
			rego:     "package x\n\nviolation[{\"msg\": msg}] {\n  x == 1\n  msg := \"m\"\n}\n",
			wantRow:  4,
			wantText: []string{"rego_unsafe_var_error", "x"},
		},
		{
			name:     "undefined function",
			rego:     "package x\n\nviolation[{\"msg\": msg}] {\n  msg := no_such_function(1)\n}\n",
			wantRow:  4,
			wantText: []string{"no_such_function"},
		},
		{
			name: "v1 source parse error",
			opts: []tmplOpt{withCode(obj{"engine": "Rego", "source": obj{"version": "v1",
				"rego": "package x\n\nviolation contains {\"msg\": \"m\"} if {\n  true\n  1 +\n}\n"}})},
			wantRow:  6,
			wantText: []string{"rego_parse_error", "code[0].source.rego"},
		},
		{
			name: "lib error",
			opts: []tmplOpt{withLegacyLibs("package lib.helpers\n\nf(x) := y {\n  y := x +\n}\n")},
			rego: "package x\n\nimport data.lib.helpers\n\nviolation[{\"msg\": \"m\"}] { helpers.f(1) }\n",
			// The parser reports the error where the expression ends.
			wantRow:  5,
			wantText: []string{"libs[0]"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rego := tc.rego
			if rego == "" {
				rego = alwaysViolateRego
			}
			ct := newTemplate(t, "K8sBroken", rego, tc.opts...)
			e := newEngine(t, Options{})
			err := e.AddTemplate(context.Background(), ct)
			if err == nil {
				t.Fatal("AddTemplate accepted broken Rego")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, ErrInvalidTemplate) {
				t.Errorf("error is not ErrInvalidTemplate")
			}
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("error %q has no *CompileError", err)
			}
			if ce.Row != tc.wantRow || ce.Col <= 0 {
				t.Errorf("CompileError at line %d, column %d; want line %d", ce.Row, ce.Col, tc.wantRow)
			}
			if ce.Template != "k8sbroken" {
				t.Errorf("CompileError.Template = %q", ce.Template)
			}
			if want := fmt.Sprintf("line %d, column", tc.wantRow); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
			for _, w := range tc.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if kinds := e.TemplateKinds(); len(kinds) != 0 {
				t.Errorf("broken template was kept: %v", kinds)
			}
		})
	}
	t.Run("legacy rego field is named", func(t *testing.T) {
		ct := newTemplate(t, "K8sBroken", "package x\nviolation[{\"msg\": m}] { m := }\n")
		err := newEngine(t, Options{}).AddTemplate(context.Background(), ct)
		if err == nil || !strings.Contains(err.Error(), "spec.targets[0].rego: line 2") {
			t.Fatalf("error %v does not locate spec.targets[0].rego line 2", err)
		}
	})
}

func TestCreateCRD(t *testing.T) {
	u := newTemplateU("v1", "K8sRequiredLabels", alwaysViolateRego,
		withSchema(t, "{type: object, properties: {labels: {type: array, items: {type: string}}}}"))
	u.SetLabels(map[string]string{"team": "platform"})
	u.Object["spec"].(obj)["crd"].(obj)["spec"].(obj)["names"].(obj)["shortNames"] = []any{"rl"}
	ct, err := ParseTemplate(u)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Options{})
	crd, err := e.CreateCRD(context.Background(), ct)
	if err != nil {
		t.Fatalf("CreateCRD: %v", err)
	}
	if crd.APIVersion != "apiextensions.k8s.io/v1" || crd.Kind != "CustomResourceDefinition" {
		t.Errorf("TypeMeta = %s %s", crd.APIVersion, crd.Kind)
	}
	if crd.Name != "k8srequiredlabels.constraints.gatekeeper.sh" {
		t.Errorf("name %q", crd.Name)
	}
	s := crd.Spec
	if s.Group != "constraints.gatekeeper.sh" || s.Scope != apiextensionsv1.ClusterScoped {
		t.Errorf("group %q scope %q", s.Group, s.Scope)
	}
	n := s.Names
	if n.Kind != "K8sRequiredLabels" || n.ListKind != "K8sRequiredLabelsList" || n.Plural != "k8srequiredlabels" || n.Singular != "k8srequiredlabels" {
		t.Errorf("names %+v", n)
	}
	if !equalStrings(sortedCopy(n.Categories), []string{"constraint", "constraints"}) {
		t.Errorf("categories %v", n.Categories)
	}
	if !equalStrings(n.ShortNames, []string{"rl"}) {
		t.Errorf("shortNames %v", n.ShortNames)
	}
	if crd.Labels["gatekeeper.sh/constraint"] != "yes" || crd.Labels["team"] != "platform" {
		t.Errorf("labels %v", crd.Labels)
	}
	if len(s.Versions) != 2 {
		t.Fatalf("versions %+v", s.Versions)
	}
	versions := map[string]apiextensionsv1.CustomResourceDefinitionVersion{}
	for _, v := range s.Versions {
		versions[v.Name] = v
	}
	if v, ok := versions["v1beta1"]; !ok || !v.Served || !v.Storage {
		t.Errorf("v1beta1 must be served and the storage version: %+v", v)
	}
	if v, ok := versions["v1alpha1"]; !ok || !v.Served || v.Storage {
		t.Errorf("v1alpha1 must be served and not stored: %+v", v)
	}
	for name, v := range versions {
		cols := map[string]apiextensionsv1.CustomResourceColumnDefinition{}
		for _, c := range v.AdditionalPrinterColumns {
			cols[c.Name] = c
		}
		if c, ok := cols["enforcement-action"]; !ok || c.JSONPath != ".spec.enforcementAction" {
			t.Errorf("%s: enforcement-action column %+v", name, c)
		}
		if c, ok := cols["total-violations"]; !ok || c.JSONPath != ".status.totalViolations" || c.Type != "integer" {
			t.Errorf("%s: total-violations column %+v", name, c)
		}
		if v.Subresources == nil || v.Subresources.Status == nil {
			t.Errorf("%s: no status subresource", name)
		}
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			t.Fatalf("%s: no schema", name)
		}
		spec := v.Schema.OpenAPIV3Schema.Properties["spec"]
		for _, f := range []string{"match", "enforcementAction", "scopedEnforcementActions", "parameters"} {
			if _, ok := spec.Properties[f]; !ok {
				t.Errorf("%s: spec.%s missing from the schema", name, f)
			}
		}
		if got := spec.Properties["parameters"].Properties["labels"].Type; got != "array" {
			t.Errorf("%s: spec.parameters.labels type %q", name, got)
		}
		match := spec.Properties["match"]
		for _, f := range []string{"kinds", "scope", "namespaces", "excludedNamespaces", "labelSelector", "namespaceSelector", "name", "source"} {
			if _, ok := match.Properties[f]; !ok {
				t.Errorf("%s: spec.match.%s missing from the schema", name, f)
			}
		}
	}
	// CreateCRD does not compile Rego, as in the frameworks client.
	broken := newTemplate(t, "K8sBroken", "package x\nviolation[{\"msg\": m}] { m := }\n")
	if _, err := e.CreateCRD(context.Background(), broken); err != nil {
		t.Errorf("CreateCRD compiled Rego: %v", err)
	}
}

func TestAddConstraintErrors(t *testing.T) {
	schema := "{type: object, properties: {labels: {type: array, items: {type: string}}, count: {type: integer}}}"
	e := newEngine(t, Options{},
		newTemplate(t, "K8sRequiredLabels", alwaysViolateRego, withSchema(t, schema)),
		newTemplate(t, "K8sNoSchema", alwaysViolateRego),
	)
	legacy, err := ParseTemplate(newTemplateU("v1beta1", "K8sLegacy", alwaysViolateRego))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.AddTemplate(context.Background(), legacy); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		c       *unstructured.Unstructured
		wantErr []string // substrings; nil means accepted
		is      error
	}{
		{name: "valid parameters", c: newConstraint(t, "K8sRequiredLabels", "ok", "parameters: {labels: [a, b], count: 2}")},
		{name: "parameter of the wrong type", c: newConstraint(t, "K8sRequiredLabels", "bad-type", "parameters: {labels: notalist}"),
			wantErr: []string{"parameters.labels"}},
		{name: "parameter item of the wrong type", c: newConstraint(t, "K8sRequiredLabels", "bad-item", "parameters: {count: many}"),
			wantErr: []string{"parameters.count"}},
		{name: "unknown parameter", c: newConstraint(t, "K8sRequiredLabels", "unknown", "parameters: {lables: [a]}"),
			wantErr: []string{"lables"}},
		{name: "parameters without a schema in v1", c: newConstraint(t, "K8sNoSchema", "noschema", "parameters: {x: 1}"),
			wantErr: []string{"parameters"}},
		{name: "parameters without a schema in v1beta1 (legacySchema)", c: newConstraint(t, "K8sLegacy", "legacy", "parameters: {x: 1}")},
		{name: "missing template", c: newConstraint(t, "K8sMissing", "c", ""),
			wantErr: []string{"K8sMissing"}, is: ErrMissingTemplate},
		{name: "wrong group", c: func() *unstructured.Unstructured {
			c := newConstraint(t, "K8sRequiredLabels", "c", "")
			c.SetAPIVersion("constraints.example.com/v1beta1")
			return c
		}(), wantErr: []string{"constraints.example.com"}},
		{name: "unsupported version", c: func() *unstructured.Unstructured {
			c := newConstraint(t, "K8sRequiredLabels", "c", "")
			c.SetAPIVersion("constraints.gatekeeper.sh/v1")
			return c
		}(), wantErr: []string{"v1"}},
		{name: "name is not DNS-1123", c: newConstraint(t, "K8sRequiredLabels", "Not_Valid", ""), wantErr: []string{"Not_Valid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.AddConstraint(context.Background(), tc.c)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("AddConstraint: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("AddConstraint accepted the constraint")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if verr := e.ValidateConstraint(tc.c); verr == nil {
				t.Errorf("ValidateConstraint accepted what AddConstraint refused")
			}
		})
	}
	if tmpls, cons := e.Counts(); tmpls != 3 || cons != 2 {
		t.Errorf("Counts() = %d templates, %d constraints; want 3, 2", tmpls, cons)
	}
}

// TestTemplateLifecycle covers adding, re-adding, updating and removing
// templates and constraints, and the counts the engine reports.
func TestTemplateLifecycle(t *testing.T) {
	ctx := context.Background()
	ct := newTemplate(t, alwaysKind, alwaysViolateRego)
	e := newEngine(t, Options{}, ct)
	if err := e.AddTemplate(ctx, ct); err != nil {
		t.Fatalf("re-adding the same template: %v", err)
	}
	c1 := newConstraint(t, alwaysKind, "one", "")
	c2 := newConstraint(t, alwaysKind, "two", "enforcementAction: warn")
	mustAddConstraint(t, e, c1)
	mustAddConstraint(t, e, c2)
	mustAddConstraint(t, e, c1) // re-adding is an update, not a second constraint
	c1.Object["status"] = obj{"totalViolations": int64(3)}
	mustAddConstraint(t, e, c1) // status is ignored
	if tmpls, cons := e.Counts(); tmpls != 1 || cons != 2 {
		t.Fatalf("Counts() = %d, %d; want 1, 2", tmpls, cons)
	}
	if got := e.TemplateKinds(); !equalStrings(got, []string{alwaysKind}) {
		t.Fatalf("TemplateKinds() = %v", got)
	}
	in := objIn(pod("default", "p", nil))
	if vs := mustReview(t, e, in, EnforcementPointAudit); len(vs) != 2 {
		t.Fatalf("got %q, want two violations", messages(vs))
	}

	// Updating the template's Rego takes effect.
	updated := newTemplate(t, alwaysKind, "package x\n\nviolation[{\"msg\": \"worse\"}] { true }\n")
	if err := e.AddTemplate(ctx, updated); err != nil {
		t.Fatal(err)
	}
	if got := messages(mustReview(t, e, in, EnforcementPointAudit)); !equalStrings(got, []string{"worse", "worse"}) {
		t.Fatalf("after update got %q", got)
	}

	if err := e.RemoveConstraint(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveConstraint(ctx, c2); err != nil {
		t.Fatalf("removing a constraint twice: %v", err)
	}
	if _, cons := e.Counts(); cons != 1 {
		t.Fatalf("after RemoveConstraint: %d constraints", cons)
	}
	if err := e.RemoveTemplate(ctx, ct); err != nil {
		t.Fatal(err)
	}
	if tmpls, cons := e.Counts(); tmpls != 0 || cons != 0 {
		t.Fatalf("after RemoveTemplate: %d templates, %d constraints", tmpls, cons)
	}
	if vs := mustReview(t, e, in, EnforcementPointAudit); len(vs) != 0 {
		t.Fatalf("after RemoveTemplate got %q", messages(vs))
	}
	if err := e.AddConstraint(ctx, c1); err == nil {
		t.Fatal("AddConstraint succeeded after its template was removed")
	}
}

// TestTemplateRegoRules checks the frameworks' rules for template Rego,
// which Gatekeeper templates rely on.
func TestTemplateRegoRules(t *testing.T) {
	tests := []struct {
		name string
		rego string
		opts []tmplOpt
		want string
	}{
		{"no violation rule", "package x\n\ndeny[{\"msg\": \"m\"}] { true }\n", nil, "violation"},
		{"violation without msg", "package x\n\nviolation[{\"details\": 1}] { true }\n", nil, "msg"},
		{"disallowed data ref", "package x\n\nviolation[{\"msg\": \"m\"}] { data.foo.bar }\n", nil, "data.foo.bar"},
		{"import rego.v1", "package x\n\nimport rego.v1\n\nviolation contains {\"msg\": \"m\"} if { true }\n", nil, "rego.v1"},
		{"lib outside data.lib", "package x\n\nimport data.lib.helpers\n\nviolation[{\"msg\": helpers.m}] { true }\n",
			[]tmplOpt{withLegacyLibs("package helpers\n\nm := \"x\"\n")}, "lib"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := newEngine(t, Options{}).AddTemplate(context.Background(), newTemplate(t, "K8sRules", tc.rego, tc.opts...))
			if err == nil {
				t.Fatal("AddTemplate accepted the template")
			}
			if !errors.Is(err, ErrInvalidTemplate) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrInvalidTemplate mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("future keywords in v0", func(t *testing.T) {
		rego := "package x\n\nimport future.keywords.in\nimport future.keywords.if\nimport future.keywords.contains\n\nviolation contains {\"msg\": \"m\"} if { 1 in [1] }\n"
		if err := newEngine(t, Options{}).AddTemplate(context.Background(), newTemplate(t, "K8sFuture", rego)); err != nil {
			t.Fatalf("AddTemplate: %v", err)
		}
	})
}
