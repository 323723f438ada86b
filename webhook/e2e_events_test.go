package webhook_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/violations"
)

const eventsTemplate = `apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8seventsowner
spec:
  crd:
    spec:
      names:
        kind: K8sEventsOwner
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8seventsowner
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels.owner
        msg := sprintf("%v has no owner", [input.review.object.metadata.name])
      }
`

func eventsConstraint(action string) string {
	return fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sEventsOwner
metadata:
  name: cm-owner-%[1]s
spec:
  enforcementAction: %[1]s
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
    namespaces: [acc-events]
`, action)
}

// TestAdmissionEvents: with --emit-admission-events a refused, a warned
// and a dryrun ConfigMap each leave a Warning Event from
// gatekeeper-webhook in the manager's namespace, with Gatekeeper's reason,
// message and annotations, about a reference naming the object and the
// constraint.
func TestAdmissionEvents(t *testing.T) {
	needEnv(t)
	ctx := t.Context()
	mustCreate(t, env.Client, namespace("acc-events", nil))
	// Events go to the manager's namespace, which an install creates.
	if err := env.Client.Create(ctx, namespace(hook.opts.Namespace, nil)); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	createPolicy(t, eventsTemplate)
	for _, action := range []string{"deny", "warn", "dryrun"} {
		createPolicy(t, eventsConstraint(action))
	}
	eventually(t, "the three constraints to judge a ConfigMap", func(ctx context.Context) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "acc-events"}}
		err := env.Client.Create(ctx, cm, client.DryRunAll)
		if err := wantDenied(err, "[cm-owner-deny] probe has no owner"); err != nil {
			return err
		}
		return nil
	})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unowned", Namespace: "acc-events"}}
	if err := wantDenied(env.Client.Create(ctx, cm), "[cm-owner-deny] unowned has no owner"); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ reason, msg string }{
		"cm-owner-deny":   {violations.ReasonFailedAdmission, `Admission webhook "validation.gatekeeper.sh" denied request`},
		"cm-owner-warn":   {violations.ReasonWarningAdmission, `Admission webhook "validation.gatekeeper.sh" raised a warning for this request`},
		"cm-owner-dryrun": {violations.ReasonDryrunViolation, "Dryrun violation"},
	}
	ns := hook.opts.Namespace
	eventually(t, "an Event per constraint about ConfigMap unowned", func(ctx context.Context) error {
		list := &corev1.EventList{}
		if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		for constraint, w := range want {
			var found *corev1.Event
			for i := range list.Items {
				e := &list.Items[i]
				if e.InvolvedObject.Name == "unowned" && e.Annotations["constraint_name"] == constraint {
					found = e
				}
			}
			if found == nil {
				return fmt.Errorf("no Event of %s in %s", constraint, ns)
			}
			msg := fmt.Sprintf("%s, Resource Namespace: acc-events, Constraint: %s, Message: unowned has no owner", w.msg, constraint)
			obj := found.InvolvedObject
			if found.Reason != w.reason || found.Message != msg || found.Type != corev1.EventTypeWarning ||
				found.Source.Component != violations.ComponentWebhook || obj.Kind != "ConfigMap" || obj.Namespace != ns ||
				string(obj.UID) != "ConfigMap/acc-events/unowned/K8sEventsOwner//"+constraint {
				t.Fatalf("Event %s: %s %s %q from %s about %+v", found.Name, found.Type, found.Reason, found.Message, found.Source.Component, obj)
			}
			for k, v := range map[string]string{
				"process": "admission", "event_type": "violation", "constraint_kind": "K8sEventsOwner",
				"constraint_group": "constraints.gatekeeper.sh", "constraint_api_version": "v1beta1",
				"constraint_action": constraint[len("cm-owner-"):], "resource_kind": "ConfigMap", "resource_api_version": "v1",
				"resource_namespace": "acc-events", "resource_name": "unowned", "request_username": "admin",
			} {
				if got := found.Annotations[k]; got != v {
					return fmt.Errorf("event of %s: annotation %s = %q, want %q", constraint, k, got, v)
				}
			}
		}
		return nil
	})
}
