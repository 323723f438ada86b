package vap_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/vap"
)

// TestRemovedMidGeneration deletes a template at different points of the
// generation of its policy and binding: right after creating it and its
// constraint, once its policy exists, and while its binding waits or
// once it exists. No policy or binding of it outlives it.
func TestRemovedMidGeneration(t *testing.T) {
	needEnv(t)
	const (
		podID = "pod-mid-generation"
		wait  = time.Second
	)
	startManager(t, podID, func(o *manager.Options) { o.VAP.WaitForBindings = wait })
	// failurePolicy Ignore: a binding whose kind the API server's
	// admission has not discovered yet, 1 s after its CRD was created,
	// then lets requests through instead of refusing them all.
	src := "        failurePolicy: Ignore\n"
	points := []struct {
		name  string
		ready func(ctx context.Context) error
	}{
		{"at once", func(context.Context) error { return nil }},
		{"once the policy exists", func(ctx context.Context) error {
			_, err := getPolicy(ctx, "gatekeeper-midgen")
			return err
		}},
		{"while the binding waits", func(ctx context.Context) error {
			s, err := bindingStatus(ctx, "MidGen", "mid", podID)
			if err != nil || s == nil {
				return fmt.Errorf("binding status %v (%w)", s, err)
			}
			return nil
		}},
		{"once the binding exists", func(ctx context.Context) error {
			_, err := getBinding(ctx, vap.BindingName("MidGen", "mid"))
			return err
		}},
	}
	for _, p := range points {
		ct := testenv.Parse(t, labelsTemplate("midgen", "MidGen", src))
		testenv.Create(t, env.Client, ct, waitTimeout)
		c := testenv.Parse(t, labelsConstraint("MidGen", "mid", `["default"]`, "owner", "deny"))
		// The kind was served before: until it is again, the API server
		// answers 404 rather than the client's no-match.
		eventually(t, "the constraint to be created", func(ctx context.Context) error {
			return env.Client.Create(ctx, c.DeepCopy())
		})
		eventually(t, "the template to be "+p.name, p.ready)
		testenv.DeleteAndWait(t, env.Client, ct, waitTimeout, false)
		// Longer than a binding waits: one generated late would be there.
		time.Sleep(2 * wait)
		eventually(t, "no policy or binding after deleting the template "+p.name, func(ctx context.Context) error {
			if err := gone(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{}, "gatekeeper-midgen"); err != nil {
				return err
			}
			list := &admissionregistrationv1.ValidatingAdmissionPolicyBindingList{}
			if err := env.Client.List(ctx, list); err != nil {
				return err
			}
			for _, b := range list.Items {
				if strings.HasPrefix(b.Name, "gatekeeper-midgen") || b.Spec.PolicyName == "gatekeeper-midgen" {
					return fmt.Errorf("binding %s left", b.Name)
				}
			}
			return nil
		})
	}
}
