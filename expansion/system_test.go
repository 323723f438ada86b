package expansion

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/api/expansion/v1alpha1"
	"github.com/portcullis-dev/portcullis/engine"
)

// TestExpandResultant pins the resultant Gatekeeper builds
// (pkg/expansion/system.go expandResource, and gator expand's
// basic-expansion output): the templateSource's value, of the generated
// kind, named <parent>-<kind> in lower case, in the parent's namespace,
// owned by the parent.
func TestExpandResultant(t *testing.T) {
	s := system(t, nil, expandDeployments)
	parent := parse(t, deployment)
	before := parent.DeepCopy()
	got, err := s.Expand(context.Background(), parent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d resultants, want 1", len(got))
	}
	want := parse(t, `
apiVersion: v1
kind: Pod
metadata:
  name: nginx-deployment-pod
  namespace: web
  labels: {app: nginx}
  ownerReferences:
  - {apiVersion: apps/v1, kind: Deployment, name: Nginx-Deployment, uid: ""}
spec:
  containers:
  - name: nginx
    image: nginx:1.14.2
`)
	if !reflect.DeepEqual(got[0].Object.Object, want.Object) {
		t.Errorf("resultant =\n%v\nwant\n%v", got[0].Object.Object, want.Object)
	}
	if got[0].TemplateName != "expand-deployments" || got[0].EnforcementAction != "" {
		t.Errorf("resultant %+v", got[0])
	}
	if !reflect.DeepEqual(parent, before) {
		t.Error("Expand changed the parent")
	}
	// The resultant is a copy: changing it leaves the parent alone.
	if err := unstructured.SetNestedField(got[0].Object.Object, "changed", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parent, before) {
		t.Error("the resultant shares the parent's values")
	}
}

// TestExpandNamespace: the Namespace given names the resultant's
// namespace; without one, the parent's (Gatekeeper's expandResource).
func TestExpandNamespace(t *testing.T) {
	s := system(t, nil, expandDeployments)
	tests := []struct {
		name   string
		parent string
		ns     *corev1.Namespace
		want   string
	}{
		{"parent's namespace", deployment, nil, "web"},
		{"given Namespace", deployment, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, "other"},
		{"nameless Namespace (gator, no metadata.namespace)", strings.Replace(deployment, "  namespace: web\n", "", 1), &corev1.Namespace{}, ""},
		{"no namespace at all", strings.Replace(deployment, "  namespace: web\n", "", 1), nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Expand(context.Background(), parse(t, tc.parent), tc.ns)
			if err != nil || len(got) != 1 {
				t.Fatalf("Expand = %v, %v", got, err)
			}
			if ns := got[0].Object.GetNamespace(); ns != tc.want {
				t.Errorf("namespace %q, want %q", ns, tc.want)
			}
			if _, found, _ := unstructured.NestedString(got[0].Object.Object, "metadata", "namespace"); found != (tc.want != "") {
				t.Errorf("metadata.namespace present: %v, want %v", found, tc.want != "")
			}
		})
	}
}

// TestExpandRecursive pins Gatekeeper's test/expansion CronJob -> Job ->
// Pod: every level is a resultant, deeper ones first, each named after its
// own parent and owned by it.
func TestExpandRecursive(t *testing.T) {
	s := system(t, nil, expandCronJobs, expandJobs)
	got, err := s.Expand(context.Background(), parse(t, cronJob), nil)
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, r := range got {
		o := r.Object
		owner := o.GetOwnerReferences()
		summary = append(summary, fmt.Sprintf("%s %s/%s by %s owned by %s/%s", o.GetAPIVersion()+"/"+o.GetKind(), o.GetNamespace(), o.GetName(), r.TemplateName, owner[0].Kind, owner[0].Name))
	}
	want := []string{
		"v1/Pod jobs/nightly-job-pod by expand-jobs owned by Job/nightly-job",
		"batch/v1/Job jobs/nightly-job by expand-cronjobs owned by CronJob/nightly",
	}
	if !reflect.DeepEqual(summary, want) {
		t.Errorf("resultants:\n%s\nwant\n%s", strings.Join(summary, "\n"), strings.Join(want, "\n"))
	}
	if l := got[0].Object.GetLabels(); l["pod"] != "nightly" {
		t.Errorf("the Pod has labels %v, want its Job's template's", l)
	}
}

// TestExpandSeveralTemplates: every template of a kind applies, by name
// (Gatekeeper's foobar_expansion: two templates, two resultants).
func TestExpandSeveralTemplates(t *testing.T) {
	other := strings.NewReplacer("expand-deployments", "also-expand", `version: v1, kind: Pod}`, `version: v9, kind: PodLike}`).Replace(expandDeployments)
	s := system(t, nil, other, expandDeployments)
	got, err := s.Expand(context.Background(), parse(t, deployment), nil)
	if err != nil || len(got) != 2 {
		t.Fatalf("Expand = %d resultants, %v; want 2", len(got), err)
	}
	if got[0].TemplateName != "also-expand" || got[1].TemplateName != "expand-deployments" || got[0].Object.GetName() != "nginx-deployment-podlike" {
		t.Errorf("resultants %s (%s), %s", got[0].TemplateName, got[0].Object.GetName(), got[1].TemplateName)
	}
}

// TestExpandNothing: kinds no template applies to, and other versions of a
// kind, expand into nothing.
func TestExpandNothing(t *testing.T) {
	s := system(t, nil, expandDeployments)
	for _, y := range []string{cronJob, strings.Replace(deployment, "apps/v1", "apps/v1beta1", 1)} {
		got, err := s.Expand(context.Background(), parse(t, y), nil)
		if err != nil || len(got) != 0 {
			t.Errorf("Expand = %v, %v; want nothing", got, err)
		}
	}
	if got, err := NewSystem(nil).Expand(context.Background(), parse(t, deployment), nil); err != nil || got != nil {
		t.Errorf("an empty System expanded: %v, %v", got, err)
	}
}

// TestExpandBadSource: an object without the templateSource field, or
// with something other than an object there, is an error naming the
// template, the field and the object (Gatekeeper: "could not find source
// field").
func TestExpandBadSource(t *testing.T) {
	s := system(t, nil, expandDeployments)
	tests := []struct {
		name, object, want string
		is                 error
	}{
		{"missing", strings.Replace(deployment, "  template:\n", "  notemplate:\n", 1),
			`ExpansionTemplate "expand-deployments": templateSource not found: Deployment "web/Nginx-Deployment" has no field spec.template`, ErrSourceNotFound},
		{"a string", strings.Replace(deployment, "  replicas: 3\n  template:\n", "  template: nginx\n  other:\n", 1),
			`ExpansionTemplate "expand-deployments": spec.templateSource "spec.template" in Deployment "web/Nginx-Deployment" is a string, not an object`, nil},
		{"spec a list", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: [1]\n",
			`ExpansionTemplate "expand-deployments": spec.templateSource "spec.template" in Deployment "d"`, nil},
		{"metadata a list", strings.Replace(deployment, "    metadata:\n      labels: {app: nginx}\n", "    metadata: [x]\n", 1),
			`ExpansionTemplate "expand-deployments": spec.template.metadata in Deployment "web/Nginx-Deployment" is a list, not an object`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Expand(context.Background(), parse(t, tc.object), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Expand = %v, %v; want an error with %q", got, err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
		})
	}
}

// TestCycle pins Gatekeeper's cycle handling (pkg/expansion/db.go and
// test/bats "gatekeeper expansion test"): the template closing a cycle is
// refused with "template forms expansion cycle", every template of the
// cycle stops expanding, and removing one restores the others.
func TestCycle(t *testing.T) {
	s := system(t, nil, expandCronJobs, expandJobs)
	err := s.Upsert(template(t, expandPods))
	if !errors.Is(err, ErrCycle) || !strings.Contains(err.Error(), "template forms expansion cycle: expand-cronjobs, expand-jobs, expand-pods") {
		t.Fatalf("Upsert(expand-pods) = %v, want the cycle named", err)
	}
	if got := s.Conflicts(); !reflect.DeepEqual(got, []string{"expand-cronjobs", "expand-jobs", "expand-pods"}) {
		t.Errorf("Conflicts() = %v", got)
	}
	if s.Len() != 3 {
		t.Errorf("Len() = %d: a template in a cycle is kept", s.Len())
	}
	// Upserting another member again reports the cycle too.
	if err := s.Upsert(template(t, expandJobs)); !errors.Is(err, ErrCycle) {
		t.Errorf("Upsert(expand-jobs) = %v, want ErrCycle", err)
	}
	got, err := s.Expand(context.Background(), parse(t, cronJob), nil)
	if err != nil || len(got) != 0 {
		t.Errorf("templates in a cycle expanded: %v, %v", got, err)
	}
	s.Remove("expand-pods")
	if c := s.Conflicts(); len(c) != 0 {
		t.Errorf("Conflicts() = %v after the cycle was broken", c)
	}
	if got, err := s.Expand(context.Background(), parse(t, cronJob), nil); err != nil || len(got) != 2 {
		t.Errorf("after the cycle was broken: %d resultants, %v; want 2", len(got), err)
	}
	s.Remove("never-added")
}

// TestUpsertInvalidKeepsOld: an invalid update is refused and the version
// held goes on expanding, as in Gatekeeper's UpsertTemplate.
func TestUpsertInvalidKeepsOld(t *testing.T) {
	s := system(t, nil, expandDeployments)
	bad := template(t, expandDeployments)
	bad.TemplateSource = ""
	if err := s.Upsert(bad); !errors.Is(err, ErrInvalidTemplate) {
		t.Fatalf("Upsert = %v", err)
	}
	if got, err := s.Expand(context.Background(), parse(t, deployment), nil); err != nil || len(got) != 1 {
		t.Errorf("Expand = %v, %v; want the old template's resultant", got, err)
	}
	// An update that changes the kinds takes effect.
	moved := template(t, expandDeployments)
	moved.ApplyTo = []v1alpha1.ApplyTo{{Groups: []string{"batch"}, Versions: []string{"v1"}, Kinds: []string{"CronJob"}}}
	moved.TemplateSource = "spec.jobTemplate.spec.template"
	if err := s.Upsert(moved); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Expand(context.Background(), parse(t, deployment), nil); len(got) != 0 {
		t.Errorf("Deployments still expand after the update")
	}
	if got, _ := s.Expand(context.Background(), parse(t, cronJob), nil); len(got) != 1 || got[0].Object.GetName() != "nightly-pod" {
		t.Errorf("CronJob: %v", got)
	}
}

// TestMaxDepth: a chain longer than MaxDepth stops with an error rather
// than going on.
func TestMaxDepth(t *testing.T) {
	s := NewSystem(nil)
	for i := 0; i <= MaxDepth; i++ {
		tm := &Template{
			Name:           fmt.Sprintf("t%d", i),
			ApplyTo:        []v1alpha1.ApplyTo{{Groups: []string{"x"}, Versions: []string{"v1"}, Kinds: []string{fmt.Sprintf("K%d", i)}}},
			TemplateSource: "spec",
			GeneratedGVK:   schema.GroupVersionKind{Group: "x", Version: "v1", Kind: fmt.Sprintf("K%d", i+1)},
		}
		if err := s.Upsert(tm); err != nil {
			t.Fatal(err)
		}
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "x/v1", "kind": "K0", "metadata": map[string]any{"name": "o"}}}
	// spec of each level is the next level's object: nest it deep enough.
	cur := obj.Object
	for i := 0; i <= MaxDepth+1; i++ {
		next := map[string]any{"metadata": map[string]any{}}
		cur["spec"] = next
		cur = next
	}
	_, err := s.Expand(context.Background(), obj, nil)
	if err == nil || !strings.Contains(err.Error(), "maximum recursion depth of 30 reached") {
		t.Errorf("Expand = %v, want the depth error", err)
	}
}

// recordingMutator is a test double of the mutation system: it labels
// what it is given and records the source it was called with.
type recordingMutator struct {
	sources []string
	fail    bool
}

func (m *recordingMutator) Mutate(_ context.Context, obj *unstructured.Unstructured, ns *corev1.Namespace, source string) (bool, error) {
	if m.fail {
		return false, errors.New("mutator broke")
	}
	m.sources = append(m.sources, source)
	l := obj.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l["mutated"] = "yes"
	if ns != nil {
		l["ns"] = ns.Name
	}
	obj.SetLabels(l)
	return true, nil
}

// TestMutator: the Mutator is applied to every resultant, with source
// Generated, before it is expanded further (Gatekeeper's System.expand).
func TestMutator(t *testing.T) {
	m := &recordingMutator{}
	s := system(t, m, expandCronJobs, expandJobs)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "jobs"}}
	got, err := s.Expand(context.Background(), parse(t, cronJob), ns)
	if err != nil || len(got) != 2 {
		t.Fatalf("Expand = %v, %v", got, err)
	}
	for _, r := range got {
		if l := r.Object.GetLabels(); l["mutated"] != "yes" || l["ns"] != "jobs" {
			t.Errorf("%s labels %v, want the mutator's", r.Object.GetKind(), l)
		}
	}
	if !reflect.DeepEqual(m.sources, []string{engine.SourceGenerated, engine.SourceGenerated}) {
		t.Errorf("sources %v, want Generated twice", m.sources)
	}
	m.fail = true
	if _, err := s.Expand(context.Background(), parse(t, cronJob), ns); err == nil ||
		!strings.Contains(err.Error(), `mutating Job "jobs/nightly-job", expanded from CronJob "jobs/nightly" by ExpansionTemplate "expand-cronjobs": mutator broke`) {
		t.Errorf("Expand = %v, want the mutator's error in context", err)
	}
}
