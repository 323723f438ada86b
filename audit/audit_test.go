package audit_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// requiredLabel is a template whose constraints require the label named by
// parameters.label; kind names the constraint kind.
func requiredLabel(kind string) string {
	return fmt.Sprintf(`apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: %[1]s
spec:
  crd:
    spec:
      names:
        kind: %[2]s
      validation:
        openAPIV3Schema:
          type: object
          properties:
            label: {type: string}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package %[1]s
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels[input.parameters.label]
        msg := sprintf("%%s %%s has no label %%s", [input.review.kind.kind, input.review.object.metadata.name, input.parameters.label])
      }
`, strings.ToLower(kind), kind)
}

// constraint is a constraint of a requiredLabel kind on ConfigMaps of ns.
func constraint(kind, name, ns, action string) string {
	return fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: %s
metadata:
  name: %s
spec:
  enforcementAction: %s
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
    namespaces: [%s]
  parameters:
    label: owner
`, kind, name, action, ns)
}

func testOptions() audit.Options {
	o := audit.NewOptions()
	o.Interval = 0 // RunOnce only
	return o
}

// TestAuditFindsAndClears: objects created before their constraint (there
// is no webhook here) are found by one run; once fixed, the next run clears
// them. A run that changes nothing rewrites only auditTimestamp, and with
// StatusOnChange nothing.
func TestAuditFindsAndClears(t *testing.T) {
	const ns = "audit-basic"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "bad", 3, nil)
	configMaps(t, ns, "good", 2, map[string]string{"owner": "me"})
	apply(t, requiredLabel("AuditBasic"))
	c := apply(t, constraint("AuditBasic", "owner-required", ns, "deny"))[0]
	waitEnforced(t, c)

	a := newAuditor(t, testOptions(), nil)
	rep := runOnce(t, a)
	s := readStatus(t, "AuditBasic", "owner-required")
	if !s.found || s.total != 3 {
		t.Fatalf("totalViolations = %d (set: %v), want 3", s.total, s.found)
	}
	if got, want := strings.Join(names(s.violations), ","), ns+"/bad-0000,"+ns+"/bad-0001,"+ns+"/bad-0002"; got != want {
		t.Errorf("violations %s, want %s", got, want)
	}
	v := s.violations[0]
	if v.Group != "" || v.Version != "v1" || v.Kind != "ConfigMap" || v.EnforcementAction != "deny" ||
		v.Message != "ConfigMap bad-0000 has no label owner" {
		t.Errorf("violation %+v", v)
	}
	if s.timestamp != rep.Start.UTC().Format(time.RFC3339) {
		t.Errorf("auditTimestamp %s, want the run's start %s", s.timestamp, rep.Start.UTC().Format(time.RFC3339))
	}
	if cr := rep.Constraint("AuditBasic", "owner-required"); cr == nil || !cr.Written || cr.Found != 3 || cr.TotalViolations != 3 {
		t.Errorf("report of the constraint: %+v", cr)
	}
	if byPod, _, _ := unstructuredSlice(s.obj.Object, "status", "byPod"); len(byPod) == 0 {
		t.Error("the audit dropped the status.byPod the constraint controller wrote")
	}

	// kubectl get constraints shows the total.
	out := env.Kubectl(t, "get", "constraints")
	if !strings.Contains(out, "TOTAL-VIOLATIONS") || !strings.Contains(out, "owner-required") {
		t.Errorf("kubectl get constraints:\n%s", out)
	}
	for line := range strings.SplitSeq(out, "\n") {
		if strings.Contains(line, "owner-required") && !strings.HasSuffix(strings.TrimSpace(line), " 3") {
			t.Errorf("kubectl get constraints row %q does not end with the total 3", line)
		}
	}

	// Unchanged, with --audit-status-on-change: not rewritten.
	rv := s.obj.GetResourceVersion()
	onChange := testOptions()
	onChange.StatusOnChange = true
	rep = runOnce(t, newAuditor(t, onChange, nil))
	if cr := rep.Constraint("AuditBasic", "owner-required"); cr == nil || cr.Written {
		t.Errorf("an unchanged status was written with StatusOnChange: %+v", cr)
	}
	if s2 := readStatus(t, "AuditBasic", "owner-required"); s2.obj.GetResourceVersion() != rv || s2.timestamp != s.timestamp {
		t.Errorf("an unchanged status was rewritten with StatusOnChange: resourceVersion %s, was %s", s2.obj.GetResourceVersion(), rv)
	}

	// Unchanged, by default: auditTimestamp is every run's, as Gatekeeper
	// writes it (RFC 3339 has whole seconds: the next run is in another).
	time.Sleep(time.Until(rep.Start.Truncate(time.Second).Add(time.Second)))
	rep = runOnce(t, a)
	if cr := rep.Constraint("AuditBasic", "owner-required"); cr == nil || !cr.Written {
		t.Errorf("an unchanged status was not written by default: %+v", cr)
	}
	if s2 := readStatus(t, "AuditBasic", "owner-required"); s2.timestamp != rep.Start.UTC().Format(time.RFC3339) || s2.timestamp == s.timestamp {
		t.Errorf("auditTimestamp %s after an unchanged run, want that run's start %s (was %s)", s2.timestamp, rep.Start.UTC().Format(time.RFC3339), s.timestamp)
	}

	// Fixed: cleared by the next run.
	labelAll(t, ns, "owner", "someone")
	rep = runOnce(t, a)
	s = readStatus(t, "AuditBasic", "owner-required")
	if !s.found || s.total != 0 || len(s.violations) != 0 {
		t.Errorf("after the fix: totalViolations %d, violations %v; want 0 and none", s.total, names(s.violations))
	}
	if s.timestamp != rep.Start.UTC().Format(time.RFC3339) {
		t.Errorf("auditTimestamp %s, want this run's start", s.timestamp)
	}

	// The run's metrics.
	if got := gauge(t, "gatekeeper_audit_last_run_time", nil); got < float64(rep.Start.Unix()) {
		t.Errorf("gatekeeper_audit_last_run_time %v, want at least %d", got, rep.Start.Unix())
	}
	if got := histogramCount(t, "gatekeeper_audit_duration_seconds"); got < 3 {
		t.Errorf("gatekeeper_audit_duration_seconds counted %d runs, want at least 3", got)
	}
	if _, ok := testenv.FindMetric(t, "gatekeeper_violations", map[string]string{"enforcement_action": "deny"}); !ok {
		t.Error("no gatekeeper_violations{enforcement_action=deny}")
	}
}

// TestAuditPagesAndLimit: 1,200 objects listed 100 at a time are all
// reviewed; with a limit of 5 the status lists 5 of them, always the same
// ones, and counts all.
func TestAuditPagesAndLimit(t *testing.T) {
	const ns = "audit-many"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "cm", 1200, nil)
	apply(t, requiredLabel("AuditMany"))
	c := apply(t, constraint("AuditMany", "many", ns, "deny"))[0]
	waitEnforced(t, c)

	opts := testOptions()
	opts.ChunkSize = 100
	opts.ViolationsLimit = 5
	a := newAuditor(t, opts, nil)
	rep := runOnce(t, a)
	cms := rep.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"})
	if cms == nil || cms.Err != nil || cms.Objects < 1200 || cms.Pages < 12 {
		t.Fatalf("ConfigMaps listed: %+v; want at least 1200 objects in at least 12 pages", cms)
	}
	if rep.ObjectsReviewed+rep.ObjectsExempt+rep.ReviewErrors != rep.ObjectsListed || rep.ReviewErrors != 0 {
		t.Errorf("listed %d, reviewed %d, exempt %d, failed %d", rep.ObjectsListed, rep.ObjectsReviewed, rep.ObjectsExempt, rep.ReviewErrors)
	}
	s := readStatus(t, "AuditMany", "many")
	if s.total != 1200 {
		t.Errorf("totalViolations %d, want 1200", s.total)
	}
	want := ns + "/cm-0000," + ns + "/cm-0001," + ns + "/cm-0002," + ns + "/cm-0003," + ns + "/cm-0004"
	if got := strings.Join(names(s.violations), ","); got != want {
		t.Errorf("violations %s, want the first 5 in order: %s", got, want)
	}
	// The same subset every run: nothing to write with StatusOnChange.
	opts.StatusOnChange = true
	rep = runOnce(t, newAuditor(t, opts, nil))
	if cr := rep.Constraint("AuditMany", "many"); cr == nil || cr.Written || cr.TotalViolations != 1200 {
		t.Errorf("second run: %+v, want 1200 violations and nothing written", cr)
	}
}

// TestAuditEnforcementActions: dryrun and warn constraints are reported
// with their action; a scoped one with the actions it has at the audit; a
// scoped one that does not name the audit is not reported.
func TestAuditEnforcementActions(t *testing.T) {
	const ns = "audit-actions"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "cm", 2, nil)
	apply(t, requiredLabel("AuditActions"))
	cs := apply(t, constraint("AuditActions", "dryrun", ns, "dryrun")+"\n---\n"+
		constraint("AuditActions", "warn", ns, "warn")+"\n---\n"+
		scoped("AuditActions", "scoped-audit", ns, "audit.gatekeeper.sh", "warn")+"\n---\n"+
		scoped("AuditActions", "scoped-webhook", ns, "validation.gatekeeper.sh", "deny"))
	for _, c := range cs {
		waitEnforced(t, c)
	}
	rep := runOnce(t, newAuditor(t, testOptions(), nil))
	for name, want := range map[string]string{"dryrun": "dryrun", "warn": "warn", "scoped-audit": "scoped"} {
		s := readStatus(t, "AuditActions", name)
		if s.total != 2 || len(s.violations) != 2 {
			t.Errorf("%s: totalViolations %d, %d entries; want 2", name, s.total, len(s.violations))
			continue
		}
		for _, v := range s.violations {
			if v.EnforcementAction != want {
				t.Errorf("%s: enforcementAction %q, want %q", name, v.EnforcementAction, want)
			}
			if want == "scoped" && strings.Join(v.EnforcementActions, ",") != "warn" {
				t.Errorf("%s: enforcementActions %v, want [warn]", name, v.EnforcementActions)
			}
		}
	}
	if s := readStatus(t, "AuditActions", "scoped-webhook"); !s.found || s.total != 0 {
		t.Errorf("scoped constraint without the audit point: totalViolations %d (set %v), want 0", s.total, s.found)
	}
	if rep.ViolationsByAction["dryrun"] < 2 || rep.ViolationsByAction["warn"] < 4 {
		t.Errorf("violations by action %v, want at least 2 dryrun and 4 warn", rep.ViolationsByAction)
	}
	if got := gauge(t, "gatekeeper_violations", map[string]string{"enforcement_action": "dryrun"}); got < 2 {
		t.Errorf("gatekeeper_violations{dryrun} = %v, want at least 2", got)
	}
}

func scoped(kind, name, ns, point, action string) string {
	return fmt.Sprintf(`apiVersion: constraints.gatekeeper.sh/v1beta1
kind: %s
metadata:
  name: %s
spec:
  enforcementAction: scoped
  scopedEnforcementActions:
  - action: %s
    enforcementPoints: [{name: %s}]
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
    namespaces: [%s]
  parameters:
    label: owner
`, kind, name, action, point, ns)
}

// TestAuditExemptNamespaces: objects in namespaces the Config excludes from
// the audit are not reviewed. Those that --exempt-namespace, -prefix or
// -suffix name are: as Gatekeeper documents, those flags exempt from the
// webhook only ("They will still be audited"); audit.Options has no field
// for them.
func TestAuditExemptNamespaces(t *testing.T) {
	for _, ns := range []string{"audit-exempt-kept", "audit-exempt-byname", "exempt-prefix-a", "a-exempt-suffix", "audit-excluded"} {
		testenv.EnsureNamespace(t, env.Client, ns, nil)
		configMaps(t, ns, "cm", 1, nil)
	}
	apply(t, requiredLabel("AuditExempt"))
	c := apply(t, `apiVersion: constraints.gatekeeper.sh/v1beta1
kind: AuditExempt
metadata:
  name: exempt
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
    namespaces: [audit-exempt-kept, audit-exempt-byname, exempt-prefix-a, a-exempt-suffix, audit-excluded]
  parameters:
    label: owner
`)[0]
	waitEnforced(t, c)
	opts := testOptions()
	opts.Excluded = func(ns string) bool { return ns == "audit-excluded" } // as the Config's spec.match would
	rep := runOnce(t, newAuditor(t, opts, nil))
	s := readStatus(t, "AuditExempt", "exempt")
	got := strings.Join(names(s.violations), ",")
	if strings.Contains(got, "audit-excluded/") {
		t.Errorf("violation in a namespace the Config excludes: %s", got)
	}
	for _, ns := range []string{"audit-exempt-kept", "audit-exempt-byname", "exempt-prefix-a", "a-exempt-suffix"} {
		if !strings.Contains(got, ns+"/cm-0000") {
			t.Errorf("violations %v miss the object in %s", got, ns)
		}
	}
	// The excluded namespace's ConfigMap and the Namespace itself.
	if rep.ObjectsExempt != 2 {
		t.Errorf("%d objects skipped, want 2", rep.ObjectsExempt)
	}
}

// TestAuditMatchKindOnly lists only the kinds constraints name.
func TestAuditMatchKindOnly(t *testing.T) {
	const ns = "audit-kinds"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "cm", 1, nil)
	apply(t, requiredLabel("AuditKinds"))
	waitEnforced(t, apply(t, constraint("AuditKinds", "kinds", ns, "deny"))[0])
	opts := testOptions()
	opts.MatchKindOnly = true
	rep := runOnce(t, newAuditor(t, opts, nil))
	if rep.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}) == nil {
		t.Error("ConfigMaps, which the constraint names, were not listed")
	}
	if r := rep.Resource(schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}); r != nil {
		t.Errorf("ClusterRoles, which no constraint names, were listed: %+v", r)
	}
	if s := readStatus(t, "AuditKinds", "kinds"); s.total != 1 {
		t.Errorf("totalViolations %d, want 1", s.total)
	}
}

// TestAuditLoop runs the audit the way the manager does: audit.Setup on a
// manager, whose loop waits for the policies to load, then runs every
// interval on the leader.
func TestAuditLoop(t *testing.T) {
	const ns = "audit-loop"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "cm", 2, nil)
	apply(t, requiredLabel("AuditLoop"))
	c := apply(t, constraint("AuditLoop", "loop", ns, "deny"))[0]
	waitEnforced(t, c)

	opts := audit.NewOptions()
	opts.Interval = time.Second
	_, stop, err := startManager("audit-loop", &opts)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	eventually(t, "the loop to write the status", func(context.Context) (bool, error) {
		s := readStatus(t, "AuditLoop", "loop")
		return s.total == 2, fmt.Errorf("totalViolations %d", s.total)
	})
	labelAll(t, ns, "owner", "x")
	eventually(t, "the loop to clear the status", func(context.Context) (bool, error) {
		s := readStatus(t, "AuditLoop", "loop")
		return s.found && s.total == 0, fmt.Errorf("totalViolations %d", s.total)
	})
}

func TestAuditIsLeaderOnly(t *testing.T) {
	if !newAuditor(t, testOptions(), nil).NeedLeaderElection() {
		t.Error("the audit must run on the leader only")
	}
}

func unstructuredSlice(obj map[string]any, fields ...string) ([]any, bool, error) {
	cur := any(obj)
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = m[f]
	}
	s, ok := cur.([]any)
	return s, ok, nil
}

func gauge(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	m, ok := testenv.FindMetric(t, name, labels)
	if !ok {
		t.Fatalf("no metric %s%v", name, labels)
	}
	return m.GetGauge().GetValue()
}

func counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	m, ok := testenv.FindMetric(t, name, labels)
	if !ok {
		return 0
	}
	return m.GetCounter().GetValue()
}

func histogramCount(t *testing.T, name string) uint64 {
	t.Helper()
	m, ok := testenv.FindMetric(t, name, nil)
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestAuditLogs: Gatekeeper's lines, all with process audit and the run's
// audit_id (its auditTimestamp): audit_started, one violation_audited per
// violation with the constraint_* and resource_* keys, constraint_audited
// per constraint with violations, and audit_finished with the run's counts.
// Without LogViolations, no violation lines.
func TestAuditLogs(t *testing.T) {
	const ns = "audit-logs"
	testenv.EnsureNamespace(t, env.Client, ns, nil)
	configMaps(t, ns, "cm", 2, map[string]string{"app": "web"})
	apply(t, requiredLabel("AuditLogs"))
	waitEnforced(t, apply(t, constraint("AuditLogs", "logs", ns, "warn"))[0])

	for _, logViolations := range []bool{true, false} {
		var (
			mu    sync.Mutex
			lines []string
		)
		logger := funcr.New(func(prefix, args string) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, args)
		}, funcr.Options{})
		opts := testOptions()
		opts.LogViolations = logViolations
		a, err := audit.New(env.Config, mgr.Engine(), opts, logger)
		if err != nil {
			t.Fatal(err)
		}
		rep := runOnce(t, a)
		id := `"audit_id"="` + rep.Start.UTC().Format(time.RFC3339) + `"`
		mu.Lock()
		count := func(s ...string) int {
			n := 0
			for _, l := range lines {
				if containsAll(l, s...) {
					n++
				}
			}
			return n
		}
		gk := []string{`"process"="audit"`, id}
		wantViolations := map[bool]int{true: 2, false: 0}[logViolations]
		for _, c := range []struct {
			want int
			keys []string
		}{
			{1, append([]string{`"msg"="auditing constraints and violations"`, `"event_type"="audit_started"`}, gk...)},
			{wantViolations, append([]string{`"msg"="ConfigMap cm-00`, `has no label owner"`, `"event_type"="violation_audited"`,
				`"constraint_group"="constraints.gatekeeper.sh"`, `"constraint_api_version"="v1beta1"`, `"constraint_kind"="AuditLogs"`,
				`"constraint_name"="logs"`, `"constraint_namespace"=""`, `"constraint_action"="warn"`, `"constraint_enforcement_actions"=[]`,
				`"resource_group"=""`, `"resource_api_version"="v1"`, `"resource_kind"="ConfigMap"`, `"resource_namespace"="audit-logs"`,
				`"resource_name"="cm-00`, `"resource_labels"={"app"="web"}`}, gk...)},
			{1, append([]string{`"msg"="audit results for constraint"`, `"event_type"="constraint_audited"`, `"constraint_kind"="AuditLogs"`,
				`"constraint_name"="logs"`, `"constraint_action"="warn"`, `"constraint_status"="enforced"`, `"constraint_violations"="2"`}, gk...)},
			{1, append([]string{`"msg"="auditing is complete"`, `"event_type"="audit_finished"`, `"duration"=`, `"start"=`, `"end"=`,
				`"objectsReviewed"=`, `"violations"=`}, gk...)},
		} {
			if n := count(c.keys...); n != c.want {
				t.Errorf("LogViolations %t: %d lines with %q, want %d:\n%s", logViolations, n, c.keys, c.want, strings.Join(lines, "\n"))
			}
		}
		mu.Unlock()
	}
}

func containsAll(line string, s ...string) bool {
	for _, x := range s {
		if !strings.Contains(line, x) {
			return false
		}
	}
	return true
}
