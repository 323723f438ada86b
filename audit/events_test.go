package audit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/internal/violations"
)

// TestAuditEvents: with --emit-audit-events every violation becomes a
// Warning Event from gatekeeper-audit, reason AuditViolation, with
// Gatekeeper's annotations and message: in the manager's namespace about a
// reference naming the object and the constraint, or with
// --audit-events-involved-namespace in the object's namespace, about the
// object itself.
func TestAuditEvents(t *testing.T) {
	const ns, gkNamespace = "audit-events", "audit-events-system"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	testenv.EnsureNamespace(t, env.Client, gkNamespace, nil)
	configMaps(t, ns, "ev", 2, nil)
	apply(t, requiredLabel("AuditEvents"))
	waitEnforced(t, apply(t, constraint("AuditEvents", "events", ns, "dryrun"))[0])

	for _, involved := range []bool{false, true} {
		t.Run(fmt.Sprintf("involved namespace %t", involved), func(t *testing.T) {
			rec, err := violations.NewRecorder(env.Config, violations.ComponentAudit, gkNamespace, involved)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() { _ = rec.Start(ctx) }()
			opts := testOptions()
			opts.Events = rec
			a, err := audit.New(env.Config, mgr.Engine(), opts, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			rep := runOnce(t, a)
			ts := rep.Start.UTC().Format(time.RFC3339)
			where := gkNamespace
			if involved {
				where = ns
			}
			var got []corev1.Event
			testenv.Eventually(t, testenv.Poll{Timeout: waitTimeout}, "the audit's Events", func(ctx context.Context) error {
				list := &corev1.EventList{}
				if err := env.Client.List(ctx, list, client.InNamespace(where)); err != nil {
					return err
				}
				got = got[:0]
				for _, e := range list.Items {
					if e.Reason == violations.ReasonAuditViolation && e.Annotations["auditTimestamp"] == ts && e.Annotations["constraint_name"] == "events" {
						got = append(got, e)
					}
				}
				if len(got) != 2 {
					return fmt.Errorf("%d AuditViolation Events of run %s in %s, want 2", len(got), ts, where)
				}
				return nil
			})
			for _, e := range got {
				obj := e.InvolvedObject
				cm := &corev1.ConfigMap{}
				if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: obj.Name}, cm); err != nil {
					t.Fatalf("Event about %v: %v", obj, err)
				}
				msg := fmt.Sprintf("Resource Namespace: %s, Constraint: events, Message: ConfigMap %s has no label owner", ns, obj.Name)
				uid := "ConfigMap/" + ns + "/" + obj.Name + "/AuditEvents//events"
				if involved {
					msg = fmt.Sprintf("Constraint: events, Message: ConfigMap %s has no label owner", obj.Name)
					uid = string(cm.UID)
				}
				if e.Type != corev1.EventTypeWarning || e.Source.Component != violations.ComponentAudit || e.Message != msg ||
					obj.Kind != "ConfigMap" || obj.Namespace != where || string(obj.UID) != uid {
					t.Errorf("Event %s: type %s, source %s, message %q, about %+v; want Warning from %s, %q, about ConfigMap %s/%s uid %s",
						e.Name, e.Type, e.Source.Component, e.Message, obj, violations.ComponentAudit, msg, where, obj.Name, uid)
				}
				want := map[string]string{
					"process": "audit", "event_type": "violation_audited", "constraint_group": "constraints.gatekeeper.sh",
					"constraint_api_version": "v1beta1", "constraint_kind": "AuditEvents", "constraint_namespace": "",
					"constraint_action": "dryrun", "constraint_enforcement_actions": "", "resource_group": "",
					"resource_api_version": "v1", "resource_kind": "ConfigMap", "resource_namespace": ns, "resource_name": obj.Name,
				}
				for k, v := range want {
					if got, ok := e.Annotations[k]; !ok || got != v {
						t.Errorf("Event %s: annotation %s = %q, want %q", e.Name, k, got, v)
					}
				}
				if strings.Contains(fmt.Sprint(e.Annotations), "request_username") {
					t.Errorf("Event %s: an audit Event has request_username", e.Name)
				}
			}
		})
	}
}
