package audit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// hookedReviewer is the shared engine with a hook called before each
// object is reviewed; an error from the hook is the review's error.
type hookedReviewer struct {
	*engine.Engine
	hook func(ctx context.Context, obj *unstructured.Unstructured) error
}

func (h *hookedReviewer) Review(ctx context.Context, in engine.ReviewInput, ep string) (*engine.Response, error) {
	if o, ok := in.(*engine.Object); ok {
		if err := h.hook(ctx, o.Object); err != nil {
			return nil, err
		}
	}
	return h.Engine.Review(ctx, in, ep)
}

// onceOn returns a hook that runs fn the first time the object ns/name is
// reviewed.
func onceOn(ns, name string, fn func(ctx context.Context) error) func(context.Context, *unstructured.Unstructured) error {
	var once sync.Once
	return func(ctx context.Context, obj *unstructured.Unstructured) error {
		var err error
		if obj.GetNamespace() == ns && obj.GetName() == name {
			once.Do(func() { err = fn(ctx) })
		}
		return err
	}
}

// widgetCRD is a kind whose list the tests break.
var widgetCRD = looseCRD("audit.example.com", "Widget")

// looseCRD is the YAML of a namespaced CRD served and stored at v1, whose
// schema keeps any field: a kind whose list a test breaks with
// setConversion.
func looseCRD(group, kind string) string {
	lower := strings.ToLower(kind)
	return fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %[3]ss.%[1]s
spec:
  group: %[1]s
  names: {kind: %[2]s, listKind: %[2]sList, plural: %[3]ss, singular: %[3]s}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`, group, kind, lower)
}

// customObject is an object of a looseCRD kind, at version.
func customObject(group, version, kind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(group + "/" + version)
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func widget(ns, name, version string) *unstructured.Unstructured {
	return customObject("audit.example.com", version, "Widget", ns, name)
}

// setWidgetConversion makes v2 the storage version, converted from v1 by a
// webhook that is down, or (broken false) back to no conversion.
func setWidgetConversion(ctx context.Context, broken bool) error {
	return setConversion(ctx, "widgets.audit.example.com", broken)
}

// setConversion makes v2 the storage version of a CRD served at v1,
// converted from v1 by a webhook that is down, or (broken false) back to
// no conversion.
func setConversion(ctx context.Context, name string, broken bool) error {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
		return err
	}
	schema := crd.Spec.Versions[0].Schema
	crd.Spec.Versions = []apiextensionsv1.CustomResourceDefinitionVersion{
		{Name: "v1", Served: true, Schema: schema},
		{Name: "v2", Served: true, Storage: true, Schema: schema},
	}
	crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
	if broken {
		dead := "https://127.0.0.1:1/convert"
		crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{
			Strategy: apiextensionsv1.WebhookConverter,
			Webhook: &apiextensionsv1.WebhookConversion{
				ConversionReviewVersions: []string{"v1"},
				ClientConfig:             &apiextensionsv1.WebhookClientConfig{URL: &dead},
			},
		}
	}
	return env.Client.Update(ctx, crd)
}

// TestAuditListFailureKeepsViolations: a kind whose list fails part-way
// (a conversion webhook that is down, for the objects stored at the old
// version) does not stop the run, is logged and counted, and keeps the
// violations found for it before; the kinds that listed are updated.
func TestAuditListFailureKeepsViolations(t *testing.T) {
	const ns = "audit-broken"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	apply(t, widgetCRD)
	t.Cleanup(func() { _ = setWidgetConversion(context.Background(), false) }) // before the CRD is deleted
	eventually(t, "widgets to be served", func(ctx context.Context) (bool, error) {
		err := env.Client.Create(ctx, widget(ns, "w-2", "v1"))
		return err == nil, err
	})
	create(t, widget(ns, "w-3", "v1"))
	configMaps(t, ns, "cm", 1, nil)
	apply(t, requiredLabel("AuditBroken"))
	c := apply(t, `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AuditBroken
metadata:
  name: broken
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}, {apiGroups: [audit.example.com], kinds: [Widget]}]
    namespaces: [audit-broken]
  parameters:
    label: owner
`)[0]
	waitEnforced(t, c)

	opts := testOptions()
	opts.ChunkSize = 1 // one object a page, so that the list fails part-way
	a := newAuditor(t, opts, nil)
	runOnce(t, a)
	if s := readStatus(t, "AuditBroken", "broken"); s.total != 3 {
		t.Fatalf("before the failure: totalViolations %d, want 3: %v", s.total, names(s.violations))
	}

	// Widgets now list at v2; w-1 is stored at v2, w-2 and w-3 at v1 need
	// the dead webhook. The ConfigMap is fixed.
	if err := setWidgetConversion(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	disc := discovery.NewDiscoveryClientForConfigOrDie(env.Config)
	eventually(t, "widgets to be served at v2", func(context.Context) (bool, error) {
		_, err := disc.ServerResourcesForGroupVersion("audit.example.com/v2")
		return err == nil, err
	})
	eventually(t, "a widget to be created at v2", func(ctx context.Context) (bool, error) {
		err := env.Client.Create(ctx, widget(ns, "w-1", "v2"))
		return err == nil || apierrors.IsAlreadyExists(err), err
	})
	labelAll(t, ns, "owner", "x")
	widgets := schema.GroupVersionResource{Group: "audit.example.com", Version: "v2", Resource: "widgets"}
	errorsBefore := counter(t, "portcullis_audit_list_errors_total", map[string]string{"group": "audit.example.com", "resource": "widgets"})

	var rep audit.Report
	eventually(t, "v2 to be the preferred version of widgets", func(ctx context.Context) (bool, error) {
		var err error
		rep, err = a.RunOnce(ctx)
		return err == nil && rep.Resource(widgets) != nil, err
	})
	wr := rep.Resource(widgets)
	if wr.Err == nil || wr.Objects != 1 || rep.ListErrors == 0 {
		t.Fatalf("widgets listed: %+v (list errors %d); want a failure after w-1", wr, rep.ListErrors)
	}
	t.Logf("The list failed as intended: %v", wr.Err)
	if got := counter(t, "portcullis_audit_list_errors_total", map[string]string{"group": "audit.example.com", "resource": "widgets"}); got <= errorsBefore {
		t.Errorf("portcullis_audit_list_errors_total for widgets is %v, was %v", got, errorsBefore)
	}
	s := readStatus(t, "AuditBroken", "broken")
	// In order of version: w-2 and w-3 were found at v1.
	if got := strings.Join(names(s.violations), ","); got != ns+"/w-2,"+ns+"/w-3,"+ns+"/w-1" {
		t.Errorf("violations %s; want the widgets found before kept, w-1 added, and the fixed ConfigMap gone", got)
	}
	if s.total != 3 {
		t.Errorf("totalViolations %d, want 3", s.total)
	}

	// Repaired: exact again.
	if err := setWidgetConversion(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "widgets to list again", func(ctx context.Context) (bool, error) {
		rep, err := a.RunOnce(ctx)
		if err != nil {
			return false, err
		}
		r := rep.Resource(widgets)
		return r != nil && r.Err == nil, fmt.Errorf("widgets: %+v", r)
	})
	s = readStatus(t, "AuditBroken", "broken")
	if s.total != 3 || len(s.violations) != 3 || s.violations[1].Version != "v2" {
		t.Errorf("after the repair: totalViolations %d, violations %+v; want the 3 widgets at v2", s.total, s.violations)
	}
}

const boomTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: auditboom
spec:
  crd:
    spec:
      names:
        kind: AuditBoom
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package auditboom
      violation[{"msg": msg}] {
        msg := f(input.review.object)
      }
      f(x) = "a" { x.metadata.labels.boom }
      f(x) = "b" { x.metadata.labels.boom }
`

// TestAuditEngineErrors: a policy that fails on an object reports the
// failure as that object's violation; an object the engine cannot review
// is logged and counted. Neither stops the run.
func TestAuditEngineErrors(t *testing.T) {
	const ns = "audit-boom"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "boom", 1, map[string]string{"boom": "yes"})
	configMaps(t, ns, "fine", 1, nil)
	configMaps(t, ns, "review-fails", 1, nil)
	apply(t, boomTemplate)
	waitEnforced(t, apply(t, `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AuditBoom
metadata:
  name: boom
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
    namespaces: [audit-boom]
`)[0])
	failing := &hookedReviewer{Engine: mgr.Engine(), hook: func(_ context.Context, obj *unstructured.Unstructured) error {
		if obj.GetName() == "review-fails-0000" {
			return errors.New("injected review failure")
		}
		return nil
	}}
	before := counter(t, "portcullis_audit_review_errors_total", nil)
	rep := runOnce(t, newAuditor(t, testOptions(), failing))
	if rep.ReviewErrors != 1 {
		t.Errorf("%d review errors, want 1", rep.ReviewErrors)
	}
	if got := counter(t, "portcullis_audit_review_errors_total", nil); got != before+1 {
		t.Errorf("portcullis_audit_review_errors_total %v, want %v", got, before+1)
	}
	s := readStatus(t, "AuditBoom", "boom")
	if s.total != 1 || len(s.violations) != 1 || s.violations[0].Name != "boom-0000" ||
		!strings.Contains(s.violations[0].Message, "eval_conflict_error") {
		t.Errorf("totalViolations %d, violations %+v; want the evaluation error of boom-0000", s.total, s.violations)
	}
}

// TestAuditConstraintWithoutTemplate: a constraint whose template is gone
// (its CRD left behind) is skipped, its status left alone.
func TestAuditConstraintWithoutTemplate(t *testing.T) {
	apply(t, `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: auditorphans.constraints.gatekeeper.sh
spec:
  group: constraints.gatekeeper.sh
  names: {kind: AuditOrphan, listKind: AuditOrphanList, plural: auditorphans, singular: auditorphan, categories: [constraints]}
  scope: Cluster
  versions:
  - name: v1beta1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`)
	var orphan *unstructured.Unstructured
	eventually(t, "the orphan constraint to be created", func(ctx context.Context) (bool, error) {
		orphan = widget("", "orphan", "")
		orphan.SetAPIVersion(audit.ConstraintGroup + "/v1beta1")
		orphan.SetKind("AuditOrphan")
		err := env.Client.Create(ctx, orphan)
		return err == nil || apierrors.IsAlreadyExists(err), err
	})
	t.Cleanup(func() { deleteAndWait(t, orphan) })
	rv := readStatus(t, "AuditOrphan", "orphan").obj.GetResourceVersion()

	rep := runOnce(t, newAuditor(t, testOptions(), nil))
	if cr := rep.Constraint("AuditOrphan", "orphan"); cr == nil || cr.Skipped != audit.SkippedTemplateNotLoaded {
		t.Errorf("report of the orphan: %+v, want skipped: %s", cr, audit.SkippedTemplateNotLoaded)
	}
	if s := readStatus(t, "AuditOrphan", "orphan"); s.obj.GetResourceVersion() != rv || s.found {
		t.Errorf("the orphan's status was written: %v", s.obj.Object["status"])
	}
}

// TestAuditTemplateRemovedDuringRun: a template deleted during a run (its
// constraint kind leaves the engine, its CRD and constraints go) does not
// fail the run.
func TestAuditTemplateRemovedDuringRun(t *testing.T) {
	const ns = "audit-gone"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "trigger", 1, nil)
	tmpl := apply(t, requiredLabel("AuditGone"))[0]
	waitEnforced(t, apply(t, constraint("AuditGone", "gone", ns, "deny"))[0])
	r := &hookedReviewer{Engine: mgr.Engine(), hook: onceOn(ns, "trigger-0000", func(ctx context.Context) error {
		if err := env.Client.Delete(ctx, tmpl); err != nil {
			return err
		}
		eventually(t, "the engine to drop the template", func(context.Context) (bool, error) {
			if slices.Contains(mgr.Engine().TemplateKinds(), "AuditGone") {
				return false, nil
			}
			return true, nil
		})
		return nil
	})}
	rep := runOnce(t, newAuditor(t, testOptions(), r))
	cr := rep.Constraint("AuditGone", "gone")
	if cr == nil || (cr.Skipped != audit.SkippedTemplateRemoved && cr.Skipped != audit.SkippedDeleted) || cr.Err != nil {
		t.Errorf("report of the constraint: %+v, want skipped as removed", cr)
	}
	if rep.StatusErrors != 0 || rep.ListErrors != 0 {
		t.Errorf("%d status errors and %d list errors, want none: a kind that goes away is not an error", rep.StatusErrors, rep.ListErrors)
	}
}

// TestAuditConstraintDeletedDuringRun: a constraint deleted during a run is
// skipped without error.
func TestAuditConstraintDeletedDuringRun(t *testing.T) {
	const ns = "audit-deleted"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "trigger", 1, nil)
	apply(t, requiredLabel("AuditDeleted"))
	c := apply(t, constraint("AuditDeleted", "deleted", ns, "deny"))[0]
	waitEnforced(t, c)
	r := &hookedReviewer{Engine: mgr.Engine(), hook: onceOn(ns, "trigger-0000", func(ctx context.Context) error {
		return env.Client.Delete(ctx, c)
	})}
	rep := runOnce(t, newAuditor(t, testOptions(), r))
	if cr := rep.Constraint("AuditDeleted", "deleted"); cr == nil || cr.Skipped != audit.SkippedDeleted || cr.Err != nil {
		t.Errorf("report of the constraint: %+v, want skipped: %s", cr, audit.SkippedDeleted)
	}
	if rep.StatusErrors != 0 {
		t.Errorf("%d status errors", rep.StatusErrors)
	}
}
