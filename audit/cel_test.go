package audit_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestAuditCEL audits with a CEL-only template (templates/namespacelabels):
// the objects in a Namespace without the required labels are counted in
// the constraint's totalViolations and listed with the CEL message, and
// those in a labeled Namespace are not.
func TestAuditCEL(t *testing.T) {
	tmpl, err := os.ReadFile("../templates/namespacelabels/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	testenv.EnsureNamespace(t, env.Client, "audit-cel-bare", map[string]string{"team": "a"})
	testenv.EnsureNamespace(t, env.Client, "audit-cel-labeled", map[string]string{"team": "a", "cost-center": "cc-1"})
	configMaps(t, "audit-cel-bare", "cm", 3, nil)
	configMaps(t, "audit-cel-labeled", "cm", 2, nil)
	apply(t, string(tmpl))
	c := apply(t, `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: PcNamespaceLabels
metadata:
  name: audit-cel
spec:
  enforcementAction: warn
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
    namespaces: [audit-cel-*]
  parameters:
    labels: [team, cost-center]
`)[0]
	waitEnforced(t, c)
	rep := runOnce(t, newAuditor(t, testOptions(), nil))
	s := readStatus(t, "PcNamespaceLabels", "audit-cel")
	if !s.found || s.total != 3 || len(s.violations) != 3 {
		t.Fatalf("totalViolations %d (set %v), %d entries; want 3", s.total, s.found, len(s.violations))
	}
	if got := strings.Join(names(s.violations), ","); got != "audit-cel-bare/cm-0000,audit-cel-bare/cm-0001,audit-cel-bare/cm-0002" {
		t.Errorf("violations %s", got)
	}
	for _, v := range s.violations {
		if v.Message != "namespace audit-cel-bare lacks the labels cost-center" || v.EnforcementAction != "warn" || v.Kind != "ConfigMap" {
			t.Errorf("violation %+v", v)
		}
	}
	if cr := rep.Constraint("PcNamespaceLabels", "audit-cel"); cr == nil || cr.TotalViolations != 3 {
		t.Errorf("report: %s", fmt.Sprint(cr))
	}
}
