package exemption_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/exemption"
)

func TestNamespaces(t *testing.T) {
	e := exemption.NewNamespaces([]string{"kube-system", ""}, []string{"team-", ""}, []string{"-dev", ""})
	for ns, want := range map[string]bool{
		"kube-system": true, "kube-public": false, "kube-system-2": false,
		"team-a": true, "team-": true, "a-team": false,
		"x-dev": true, "-dev": true, "dev": false, "x-dev-y": false,
		"": false, "default": false,
	} {
		if got := e.Exempt(ns); got != want {
			t.Errorf("Exempt(%q) = %v, want %v", ns, got, want)
		}
	}
}

// TestNamespacesEmpty: empty entries exempt nothing, not everything, and
// the nil and the empty Namespaces exempt none.
func TestNamespacesEmpty(t *testing.T) {
	for name, e := range map[string]*exemption.Namespaces{
		"nil":           nil,
		"none":          exemption.NewNamespaces(nil, nil, nil),
		"empty entries": exemption.NewNamespaces([]string{""}, []string{""}, []string{""}),
	} {
		for _, ns := range []string{"", "default", "kube-system"} {
			if e.Exempt(ns) {
				t.Errorf("%s: Exempt(%q) = true", name, ns)
			}
		}
	}
}
