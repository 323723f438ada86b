package engine

import (
	"testing"

	"github.com/open-policy-agent/frameworks/constraint/pkg/client"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/constraints"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/engine/celdriver"
	"github.com/portcullis-dev/portcullis/engine/regodriver"
)

// clientTarget is the engine's target as the frameworks client takes it,
// for the tests that compare the engine with the client: reviews are
// handed over built, and there is no inventory.
type clientTarget struct{ *target }

func (clientTarget) ProcessData(any) (bool, []string, any, error) { return false, nil, nil, nil }

func (clientTarget) HandleReview(obj any) (bool, any, error) {
	r, ok := obj.(*review)
	return ok, r, nil
}

func (c clientTarget) ToMatcher(u *unstructured.Unstructured) (constraints.Matcher, error) {
	m, err := c.target.ToMatcher(u)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// referenceClient is a frameworks client with drivers of its own and the
// engine's target, CEL first as the engine's default: what the engine's
// registry and reviews are compared with.
func referenceClient(t *testing.T, e *Engine) *client.Client {
	t.Helper()
	rego, err := regodriver.New(regodriver.Externs("inventory"), regodriver.DisableBuiltins("http.send"), regodriver.CacheSize(0))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewClient(client.Driver(celdriver.New()), client.Driver(rego),
		client.Targets(clientTarget{e.target}), client.EnforcementPoints(e.eps...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
