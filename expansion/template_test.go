package expansion

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/api/expansion/v1alpha1"
)

// TestValidate pins Gatekeeper's ValidateTemplate (pkg/expansion/system.go)
// messages, and the two checks Portcullis adds.
func TestValidate(t *testing.T) {
	valid := func() *Template {
		return &Template{
			Name:           "expand-deployments",
			ApplyTo:        []v1alpha1.ApplyTo{{Groups: []string{"apps"}, Versions: []string{"v1"}, Kinds: []string{"Deployment"}}},
			TemplateSource: "spec.template",
			GeneratedGVK:   schema.GroupVersionKind{Version: "v1", Kind: "Pod"},
		}
	}
	tests := []struct {
		name   string
		change func(*Template)
		want   string // "" for valid
		field  string
	}{
		{"valid", func(*Template) {}, "", ""},
		{"override deny", func(t *Template) { t.EnforcementAction = "deny" }, "", ""},
		{"override warn", func(t *Template) { t.EnforcementAction = "warn" }, "", ""},
		{"override dryrun", func(t *Template) { t.EnforcementAction = "dryrun" }, "", ""},
		{"no name", func(t *Template) { t.Name = "" }, "ExpansionTemplate has empty name field", "metadata.name"},
		{"long name", func(t *Template) { t.Name = strings.Repeat("a", 64) }, "ExpansionTemplate name must be less than 64 characters", "metadata.name"},
		{"63 characters", func(t *Template) { t.Name = strings.Repeat("a", 63) }, "", ""},
		{"no source", func(t *Template) { t.TemplateSource = "" }, "ExpansionTemplate expand-deployments has empty source field", "spec.templateSource"},
		{"no generatedGVK", func(t *Template) { t.GeneratedGVK = schema.GroupVersionKind{} }, "ExpansionTemplate expand-deployments has empty generatedGVK field", "spec.generatedGVK"},
		{"no applyTo", func(t *Template) { t.ApplyTo = nil }, "ExpansionTemplate expand-deployments must specify ApplyTo", "spec.applyTo"},
		{
			"expands its own output",
			func(t *Template) {
				t.ApplyTo = append(t.ApplyTo, v1alpha1.ApplyTo{Groups: []string{""}, Versions: []string{"v1"}, Kinds: []string{"Pod"}})
			},
			"ExpansionTemplate expand-deployments generates GVK /v1, Kind=Pod, but also applies to that same GVK", "spec.applyTo[1]",
		},
		{"empty path segment", func(t *Template) { t.TemplateSource = "spec..template" }, `spec.templateSource "spec..template" has an empty field name`, "spec.templateSource"},
		{"trailing dot", func(t *Template) { t.TemplateSource = "spec." }, `spec.templateSource "spec." has an empty field name`, "spec.templateSource"},
		{"unknown action", func(t *Template) { t.EnforcementAction = "Deny" }, `spec.enforcementAction "Deny" is not one of deny, dryrun, warn`, "spec.enforcementAction"},
		{"scoped action", func(t *Template) { t.EnforcementAction = "scoped" }, `spec.enforcementAction "scoped" is not one of`, "spec.enforcementAction"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tm := valid()
			tc.change(tm)
			err := tm.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidTemplate) {
				t.Fatalf("Validate() = %v, want ErrInvalidTemplate with %q", err, tc.want)
			}
			if fe, ok := errors.AsType[*FieldError](err); !ok || fe.Field != tc.field {
				t.Errorf("Validate() = %#v, want a FieldError on %s", err, tc.field)
			}
		})
	}
}

func TestFromUnstructured(t *testing.T) {
	tm := template(t, expandCronJobs)
	if tm.Name != "expand-cronjobs" || tm.TemplateSource != "spec.jobTemplate" ||
		tm.GeneratedGVK != (schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}) || len(tm.ApplyTo) != 1 {
		t.Errorf("FromUnstructured(v1beta1) = %+v", tm)
	}
	t.Run("not a template", func(t *testing.T) {
		_, err := FromUnstructured(parse(t, deployment))
		if err == nil || !strings.Contains(err.Error(), `Deployment "Nginx-Deployment" is not an ExpansionTemplate.expansion.gatekeeper.sh`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("field of the wrong type", func(t *testing.T) {
		_, err := FromUnstructured(parse(t, strings.Replace(expandJobs, "templateSource: spec.template", "templateSource: [spec]", 1)))
		if err == nil || !strings.Contains(err.Error(), `ExpansionTemplate "expand-jobs": spec.templateSource: a list, not a string`) || !errors.Is(err, ErrInvalidTemplate) {
			t.Errorf("err = %v, want one naming the template and the field", err)
		}
	})
	t.Run("version not served", func(t *testing.T) {
		// As gator: read whatever the version; Mistake says it.
		u := parse(t, expandJobs)
		u.SetAPIVersion(Group + "/v1")
		if _, err := FromUnstructured(u); err != nil {
			t.Errorf("err = %v", err)
		}
		if m := Mistake(u); !strings.Contains(m, `apiVersion expansion.gatekeeper.sh/v1 is not served by Gatekeeper's CRD (expansion.gatekeeper.sh/v1alpha1 and v1beta1)`) {
			t.Errorf("Mistake = %q", m)
		}
		u.SetKind("ExpansionTemplates")
		if m := Mistake(u); !strings.Contains(m, `ExpansionTemplates "expand-jobs" is not an ExpansionTemplate`) {
			t.Errorf("Mistake = %q", m)
		}
		if m := Mistake(parse(t, expandJobs)); m != "" {
			t.Errorf("Mistake of a good template = %q", m)
		}
		if m := Mistake(parse(t, deployment)); m != "" {
			t.Errorf("Mistake of a Deployment = %q", m)
		}
	})
}

// TestUnjudged: a template whose generated kind no constraint matches, and
// no template expands, is reported; recursion and kind wildcards count.
func TestUnjudged(t *testing.T) {
	constraint := func(kinds string) *unstructured.Unstructured {
		return parse(t, "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sOwner\nmetadata: {name: c}\nspec:\n  match:\n    kinds: "+kinds+"\n")
	}
	s := system(t, nil, expandCronJobs, expandJobs, expandDeployments)
	tests := []struct {
		name        string
		constraints []*unstructured.Unstructured
		want        []string
	}{
		{"no constraint", nil, []string{
			`ExpansionTemplate "expand-deployments": spec.generatedGVK v1 Pod is matched by no constraint (spec.match.kinds) and expanded by no ExpansionTemplate: its resultants are never judged`,
			`ExpansionTemplate "expand-jobs": spec.generatedGVK v1 Pod is matched`,
		}},
		{"pods", []*unstructured.Unstructured{constraint(`[{apiGroups: [""], kinds: [Pod]}]`)}, nil},
		{"any kind", []*unstructured.Unstructured{constraint(`[]`)}, nil},
		{"wildcards", []*unstructured.Unstructured{constraint(`[{apiGroups: ["*"], kinds: ["*"]}]`)}, nil},
		{"other kinds", []*unstructured.Unstructured{constraint(`[{apiGroups: [apps], kinds: [Pod]}, {apiGroups: [""], kinds: [Service]}]`)}, []string{"expand-deployments", "expand-jobs"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Unjudged(tc.constraints)
			if len(got) != len(tc.want) {
				t.Fatalf("Unjudged = %q, want %d warnings", got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want %q", i, got[i], w)
				}
			}
		})
	}
}
