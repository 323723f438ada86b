package violations

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/record"
)

func testConstraint(action string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: "constraints.gatekeeper.sh", Version: "v1beta1", Kind: "K8sRequiredLabels"})
	u.SetName("must-have-owner")
	u.SetAnnotations(map[string]string{lastApplied: "{}", "team": "security"})
	_ = unstructured.SetNestedField(u.Object, action, "spec", "enforcementAction")
	return u
}

func testViolation(action string, scoped []string, namespace string) *Violation {
	return &Violation{
		Constraint: testConstraint(action), EnforcementAction: action, ScopedActions: scoped,
		Message: "missing owner", Resource: schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Namespace: namespace, Name: "cm", UID: "uid-1", ResourceVersion: "42", Username: "alice",
	}
}

// TestRef: Gatekeeper's involved object. In the manager's namespace with a
// UID naming the object and the constraint; with the involved namespace,
// the object's namespace and its UID and resourceVersion, or the manager's
// namespace for a cluster-scoped object.
func TestRef(t *testing.T) {
	for _, c := range []struct {
		involved        bool
		namespace       string
		noUID           bool
		wantNS, wantUID string
		wantRV          string
	}{
		{false, "app", false, "gk", "ConfigMap/app/cm/K8sRequiredLabels//must-have-owner", ""},
		{false, "", false, "gk", "ConfigMap//cm/K8sRequiredLabels//must-have-owner", ""},
		{true, "app", false, "app", "uid-1", "42"},
		{true, "app", true, "app", "", ""},
		{true, "", false, "gk", "uid-1", "42"},
	} {
		r := &Recorder{namespace: "gk", involved: c.involved}
		v := testViolation("deny", nil, c.namespace)
		if c.noUID {
			v.UID = ""
		}
		ref := r.ref(v)
		if ref.Kind != "ConfigMap" || ref.Name != "cm" || ref.Namespace != c.wantNS || string(ref.UID) != c.wantUID || ref.ResourceVersion != c.wantRV {
			t.Errorf("involved %t, namespace %q: ref %+v, want namespace %s, uid %s, resourceVersion %q", c.involved, c.namespace, ref, c.wantNS, c.wantUID, c.wantRV)
		}
	}
}

// TestAdmissionEvents: an Event per action, with Gatekeeper's reason and
// message, Warning; a scoped constraint's actions each get theirs.
func TestAdmissionEvents(t *testing.T) {
	for _, c := range []struct {
		action   string
		scoped   []string
		involved bool
		want     []string
	}{
		{"deny", nil, false, []string{`Warning FailedAdmission Admission webhook "validation.gatekeeper.sh" denied request, Resource Namespace: app, Constraint: must-have-owner, Message: missing owner`}},
		{"warn", nil, true, []string{`Warning WarningAdmission Admission webhook "validation.gatekeeper.sh" raised a warning for this request, Constraint: must-have-owner, Message: missing owner`}},
		{"dryrun", nil, false, []string{`Warning DryrunViolation Dryrun violation, Resource Namespace: app, Constraint: must-have-owner, Message: missing owner`}},
		{"scoped", []string{"warn", "deny"}, false, []string{"Warning WarningAdmission ", "Warning FailedAdmission "}},
	} {
		fake := record.NewFakeRecorder(10)
		r := &Recorder{recorder: fake, namespace: "gk", involved: c.involved}
		r.Admission(testViolation(c.action, c.scoped, "app"))
		close(fake.Events)
		var got []string
		for e := range fake.Events {
			got = append(got, e)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%s: Events %q, want %d", c.action, got, len(c.want))
		}
		for i := range got {
			if !strings.HasPrefix(got[i], c.want[i]) {
				t.Errorf("%s: Event %q, want %q", c.action, got[i], c.want[i])
			}
		}
	}
	var nilRecorder *Recorder
	nilRecorder.Admission(testViolation("deny", nil, "app")) // emits nothing, does not panic
	nilRecorder.Audit(testViolation("deny", nil, "app"), "2026-01-01T00:00:00Z")
}

// TestKeys: the log keys and Event annotations are Gatekeeper's, with
// last-applied-configuration left out of constraint_annotations and the
// scoped actions joined in the annotation.
func TestKeys(t *testing.T) {
	v := testViolation("scoped", []string{"deny", "warn"}, "app")
	kv := map[string]any{}
	keys := v.AuditKeys()
	for i := 0; i+1 < len(keys); i += 2 {
		kv[keys[i].(string)] = keys[i+1]
	}
	for k, want := range map[string]string{
		"event_type": "violation_audited", "constraint_kind": "K8sRequiredLabels", "constraint_action": "scoped",
		"constraint_enforcement_actions": "[deny warn]", "constraint_annotations": "map[team:security]",
		"resource_kind": "ConfigMap", "resource_api_version": "v1", "resource_namespace": "app", "resource_name": "cm",
	} {
		if got := fmtAny(kv[k]); got != want {
			t.Errorf("audit key %s = %s, want %s", k, got, want)
		}
	}
	a := v.annotations(ProcessAdmission, EventViolation)
	if a["constraint_enforcement_actions"] != "deny,warn" || a["request_username"] != "alice" || a["process"] != "admission" {
		t.Errorf("admission annotations %v", a)
	}
	if _, ok := testViolation("deny", nil, "app").annotations(ProcessAudit, EventViolationAudited)["request_username"]; ok {
		t.Error("audit annotations have request_username")
	}
	if got := Details(map[string]any{"details": "d"}, "other"); got != "d" {
		t.Errorf("Details = %v", got)
	}
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []string:
		return "[" + strings.Join(x, " ") + "]"
	case map[string]string:
		var parts []string
		for k, val := range x {
			parts = append(parts, k+":"+val)
		}
		return "map[" + strings.Join(parts, " ") + "]"
	}
	return "?"
}
