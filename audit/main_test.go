package audit_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/manager/managertest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// waitTimeout bounds every poll: generous, as the machine is shared.
const waitTimeout = 3 * time.Minute

// podID is the shared manager's replica ID in status.byPod.
const podID = "audit-test"

var (
	// env is the control plane of the package's tests.
	env *testenv.Env
	// objects creates the tests' objects on env and deletes them when the
	// test ends, a template's constraint CRD too: apply creates a YAML
	// stream's, create one, deleteAndWait deletes one.
	objects       = &testenv.Objects{Timeout: waitTimeout}
	apply         = objects.Apply
	create        = objects.Create
	deleteAndWait = objects.Delete
	// mgr is the manager shared by the tests: it loads the templates and
	// constraints they create into its engine, which the tests' auditors
	// review with. Its own audit is off; TestAuditLoop starts another.
	mgr *manager.Manager
)

// TestMain starts one control plane and one manager for the package. Set
// PORTCULLIS_TEST_LOG=1 to see the managers' logs.
func TestMain(m *testing.M) {
	testenv.Logging(nil)
	os.Exit(testenv.Main{
		What: "the audit's envtest tests",
		Start: func(e *testenv.Env) (func() error, error) {
			env, objects.Client = e, e.Client
			var stop func()
			var err error
			mgr, stop, err = startManager(podID, nil)
			if err != nil {
				return nil, fmt.Errorf("starting the manager: %w", err)
			}
			return func() error { stop(); return nil }, nil
		},
	}.Run(m))
}

// startManager runs a manager against env until stop is called, with the
// audit added by audit.Setup when auditOpts is not nil: the wiring the
// manager is to have.
func startManager(id string, auditOpts *audit.Options) (m *manager.Manager, stop func(), err error) {
	// The audit is added here by hand; the manager's own audit and webhook
	// stay off (managertest.Options).
	r, err := managertest.Start(env.Config, managertest.Options(id), func(m *manager.Manager) error {
		if auditOpts == nil {
			return nil
		}
		auditOpts.Ready = m.Ready
		return audit.Setup(m.Manager(), m.Engine(), *auditOpts)
	})
	if err != nil {
		return nil, nil, err
	}
	return r.Manager, func() {
		if err := r.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "manager %s: %v\n", id, err)
		}
	}, nil
}

// newAuditor builds an auditor on the shared manager's engine (or r) with
// opts, logging to the test.
func newAuditor(t *testing.T, opts audit.Options, r audit.Reviewer) *audit.Auditor {
	t.Helper()
	if r == nil {
		r = mgr.Engine()
	}
	a, err := audit.New(env.Config, r, opts, testLogger(t))
	if err != nil {
		t.Fatalf("audit.New: %v", err)
	}
	return a
}

// testLogger logs to t unless the test has ended.
func testLogger(t *testing.T) logr.Logger {
	if os.Getenv("PORTCULLIS_TEST_LOG") != "" {
		return testr.NewWithOptions(t, testr.Options{Verbosity: 1})
	}
	return logr.Discard()
}

func runOnce(t *testing.T, a *audit.Auditor) audit.Report {
	t.Helper()
	rep, err := a.RunOnce(t.Context())
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	t.Logf("Audit: %s, %d objects reviewed, %d violations, %d statuses written, %d list errors",
		rep.Duration().Round(time.Millisecond), rep.ObjectsReviewed, rep.Violations, rep.StatusWrites, rep.ListErrors)
	return rep
}

// eventually polls cond until it returns true, failing the test with the
// last error when waitTimeout passes.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	testenv.Eventually(t, testenv.Poll{Timeout: waitTimeout}, what, testenv.Holds(cond))
}

// configMaps creates n ConfigMaps named <prefix>-0000... in ns, in
// parallel, and deletes them when the test ends.
func configMaps(t *testing.T, ns, prefix string, n int, labels map[string]string) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		next = make(chan int)
		errs = make(chan error, n)
	)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				u := &unstructured.Unstructured{}
				u.SetAPIVersion("v1")
				u.SetKind("ConfigMap")
				u.SetNamespace(ns)
				u.SetName(fmt.Sprintf("%s-%04d", prefix, i))
				u.SetLabels(labels)
				if err := env.Client.Create(context.Background(), u); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating ConfigMaps: %v", err)
	}
	t.Cleanup(func() {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("v1")
		u.SetKind("ConfigMap")
		if err := env.Client.DeleteAllOf(context.Background(), u, client.InNamespace(ns)); err != nil {
			t.Errorf("deleting the ConfigMaps of %s: %v", ns, err)
		}
	})
}

// waitEnforced waits until the shared manager enforces the constraint.
func waitEnforced(t *testing.T, c *unstructured.Unstructured) {
	t.Helper()
	testenv.WaitEnforced(t, testenv.Poll{Timeout: waitTimeout}, env.Client, c.GetKind(), c.GetName(), podID)
}

// auditStatus is the audit's part of a constraint's status, read live.
type auditStatus struct {
	obj        *unstructured.Unstructured
	timestamp  string
	total      int64
	found      bool // totalViolations is set
	violations []audit.StatusViolation
}

func readStatus(t *testing.T, kind, name string) auditStatus {
	t.Helper()
	u, err := testenv.GetConstraint(t.Context(), env.Client, kind, name)
	if err != nil {
		t.Fatalf("getting %s %s: %v", kind, name, err)
	}
	s := auditStatus{obj: u}
	s.timestamp, _, _ = unstructured.NestedString(u.Object, "status", "auditTimestamp")
	s.total, s.found, _ = unstructured.NestedInt64(u.Object, "status", "totalViolations")
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "violations")
	for _, e := range list {
		m, _ := e.(map[string]any)
		v := audit.StatusViolation{}
		v.Group, _ = m["group"].(string)
		v.Version, _ = m["version"].(string)
		v.Kind, _ = m["kind"].(string)
		v.Namespace, _ = m["namespace"].(string)
		v.Name, _ = m["name"].(string)
		v.Message, _ = m["message"].(string)
		v.EnforcementAction, _ = m["enforcementAction"].(string)
		for _, a := range asSlice(m["enforcementActions"]) {
			v.EnforcementActions = append(v.EnforcementActions, fmt.Sprint(a))
		}
		s.violations = append(s.violations, v)
	}
	return s
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// names lists the namespace/name of violations.
func names(vs []audit.StatusViolation) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Namespace+"/"+v.Name)
	}
	return out
}

// labelAll sets a label on every ConfigMap of a namespace.
func labelAll(t *testing.T, ns, key, value string) {
	t.Helper()
	list := &unstructured.UnstructuredList{}
	list.SetAPIVersion("v1")
	list.SetKind("ConfigMapList")
	if err := env.Client.List(t.Context(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		u := &list.Items[i]
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[key] = value
		u.SetLabels(labels)
		if err := env.Client.Update(t.Context(), u); err != nil {
			t.Fatalf("labeling %s: %v", u.GetName(), err)
		}
	}
}
