package manager_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/loopback"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/manager/managertest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// waitTimeout bounds every poll: generous, as the machine may be busy.
const waitTimeout = 2 * time.Minute

// env is the control plane shared by the package's tests (TestMain).
var env *testenv.Env

// managers counts the managers running, for cleanups to know whether one
// will delete the CRD of a deleted template.
var managers atomic.Int32

var (
	// objects creates the tests' objects on env and deletes them when the
	// test ends, a template's constraint CRD too (itself when no manager
	// runs, as the garbage collector that envtest lacks would): apply
	// creates a YAML stream's, create one, deleteAndWait deletes one.
	objects       = &testenv.Objects{Timeout: waitTimeout, DeleteCRDs: func() bool { return managers.Load() == 0 }}
	apply         = objects.Apply
	create        = objects.Create
	deleteAndWait = objects.Delete
)

// running is a manager started in-process against env.
type running struct {
	*manager.Manager
	podID   string
	healthz string // base URL of /healthz and /readyz, if asked for
	metrics string // base URL of /metrics, if asked for
	stop    func()
}

type startOpts struct {
	podID       string
	probes      bool // serve /healthz, /readyz and /metrics on free ports
	leaderElect bool
	// options, if set, changes the options before the manager is built.
	options func(*manager.Options)
}

// startManager runs a manager as cluster admin until the test ends or stop
// is called.
func startManager(t *testing.T, so startOpts) *running {
	t.Helper()
	return startManagerWith(t, env.Config, so)
}

// startManagerWith runs a manager with the given credentials.
func startManagerWith(t *testing.T, cfg *rest.Config, so startOpts) *running {
	t.Helper()
	if so.podID == "" {
		so.podID = "pod-a"
	}
	// The webhook and the audit have their own end-to-end tests; here they
	// would only add writes the restart test must not see.
	opts := managertest.Options(so.podID)
	opts.LeaderElect = so.leaderElect
	r := &running{podID: so.podID}
	if so.probes {
		addr := freeAddr(t)
		opts.HealthProbeBindAddress = addr
		r.healthz = "http://" + addr
		maddr := freeAddr(t)
		opts.MetricsBindAddress = maddr
		r.metrics = "http://" + maddr
	}
	if so.options != nil {
		so.options(&opts)
	}
	m, err := managertest.Start(cfg, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Manager = m.Manager
	managers.Add(1)
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		managers.Add(-1)
		if err := m.Stop(); err != nil {
			t.Errorf("manager %s: %v", so.podID, err)
		}
	}
	t.Cleanup(r.stop)
	return r
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := loopback.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// eventually polls cond until it returns true, failing the test with the
// last error or state when waitTimeout passes.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	testenv.Eventually(t, testenv.Poll{Timeout: waitTimeout}, what, testenv.Holds(cond))
}

// get reads an object live.
func get(ctx context.Context, apiVersion, kind, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	err := env.Client.Get(ctx, client.ObjectKey{Name: name}, u)
	return u, err
}

func getTemplate(ctx context.Context, name string) (*unstructured.Unstructured, error) {
	return get(ctx, "templates.gatekeeper.sh/v1", "ConstraintTemplate", name)
}

// condition returns the condition of type typ in u's status.
func condition(u *unstructured.Unstructured, typ string) map[string]any {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && m["type"] == typ {
			return m
		}
	}
	return nil
}

// templateLoaded is true once podID reports the current generation of the
// template without errors and the template is created and Ready.
func templateLoaded(ctx context.Context, name, podID string) (bool, error) {
	u, err := getTemplate(ctx, name)
	if err != nil {
		return false, err
	}
	e := testenv.ByPod(u, podID)
	if e == nil {
		return false, fmt.Errorf("no byPod entry for %s: %v", podID, u.Object["status"])
	}
	created, _, _ := unstructured.NestedBool(u.Object, "status", "created")
	gen, _ := e["observedGeneration"].(int64)
	c := condition(u, "Ready")
	ok := created && gen == u.GetGeneration() && e["errors"] == nil && c != nil && c["status"] == "True"
	if !ok {
		return false, fmt.Errorf("status: %v", u.Object["status"])
	}
	return true, nil
}

// templateError returns podID's first error on the current generation.
func templateError(ctx context.Context, name, podID string) (map[string]any, error) {
	u, err := getTemplate(ctx, name)
	if err != nil {
		return nil, err
	}
	e := testenv.ByPod(u, podID)
	if e == nil {
		return nil, fmt.Errorf("no byPod entry for %s", podID)
	}
	if gen, _ := e["observedGeneration"].(int64); gen != u.GetGeneration() {
		return nil, fmt.Errorf("byPod entry at generation %d, want %d", gen, u.GetGeneration())
	}
	errs, _ := e["errors"].([]any)
	if len(errs) == 0 {
		return nil, fmt.Errorf("no errors in %v", e)
	}
	m, _ := errs[0].(map[string]any)
	return m, nil
}

// constraintEntry returns podID's byPod entry of a constraint once it
// reports the constraint's current generation.
func constraintEntry(ctx context.Context, kind, name, podID string) (map[string]any, error) {
	return testenv.ConstraintEntry(ctx, env.Client, kind, name, podID)
}

func constraintEnforced(ctx context.Context, kind, name, podID string) (bool, error) {
	err := testenv.ConstraintEnforced(ctx, env.Client, kind, name, podID)
	return err == nil, err
}

// review judges obj at the audit enforcement point.
func review(ctx context.Context, eng *engine.Engine, obj string) ([]string, error) {
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(obj), &u.Object); err != nil {
		return nil, err
	}
	resp, err := eng.Review(ctx, &engine.Object{Object: u, Source: engine.SourceOriginal}, engine.EnforcementPointAudit)
	if err != nil {
		return nil, err
	}
	var msgs []string
	for _, v := range resp.Violations {
		msgs = append(msgs, v.Message)
	}
	return msgs, nil
}

// resourceVersions maps kind/name to resourceVersion for objects to check
// that a restart leaves them alone.
func resourceVersions(t *testing.T, objs ...client.Object) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range objs {
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(o), o); err != nil {
			t.Fatalf("getting %T %s: %v", o, o.GetName(), err)
		}
		out[o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName()] = o.GetResourceVersion()
	}
	return out
}

func unstructuredBool(u *unstructured.Unstructured, fields ...string) (bool, bool, error) {
	return unstructured.NestedBool(u.Object, fields...)
}
