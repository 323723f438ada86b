package webhook_test

import (
	"context"
	"flag"
	"os"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/manager/managertest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/webhook"
)

// waitTimeout bounds every poll: generous, as other envtests may share
// the machine. Polls end as soon as their condition holds.
const waitTimeout = 2 * time.Minute

// The control plane and the manager with its webhook, shared by the
// package's end-to-end tests (TestMain).
var (
	env  *testenv.Env
	hook *harness
)

// exemptNamespace is passed to --exempt-namespace.
const exemptNamespace = "acc-exempt"

// harness is the manager from internal/manager running in-process with the
// webhook set up on it, registered with kube-apiserver by URL.
type harness struct {
	// opts is the webhook's options as the manager completed them.
	opts webhook.Options
	logs *syncBuffer
	stop func() error
}

// TestMain starts one control plane and the manager with its webhook for
// the end-to-end tests; without the control plane's binaries (outside CI)
// they skip and the unit tests still run. Fuzz workers run TestMain too:
// they get no control plane. Set PORTCULLIS_TEST_LOG=1 to see the logs.
func TestMain(m *testing.M) {
	logs := &syncBuffer{}
	testenv.Logging(logs)
	flag.Parse()
	if fuzzing() {
		os.Exit(m.Run())
	}
	os.Exit(testenv.Main{
		What:       "the webhook's envtest tests",
		RunWithout: true,
		Start: func(e *testenv.Env) (func() error, error) {
			env = e
			var err error
			if hook, err = startHarness(logs); err != nil {
				return nil, err
			}
			return hook.stop, nil
		},
	}.Run(m))
}

// fuzzing reports whether this process runs or coordinates fuzzing.
func fuzzing() bool {
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return true
	}
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}

// needEnv skips an end-to-end test when there is no control plane.
func needEnv(t *testing.T) {
	t.Helper()
	if env == nil {
		t.Skip("Skipping: no envtest control plane (run `make envtest-assets`)")
	}
}

func startHarness(logs *syncBuffer) (*harness, error) {
	mopts := manager.NewOptions()
	mopts.PodID = "webhook-e2e"
	// The manager sets the webhook up from its options (Namespace, Ready
	// and EngineOptions from its own), as `portcullis manager` does.
	wopts := &mopts.Webhook
	wopts.EnableDeleteOperations = true
	wopts.EnableConnectOperations = true
	wopts.ExemptNamespaces = []string{exemptNamespace}
	wopts.LogDenies = true
	wopts.EmitAdmissionEvents = true
	// The tests read the webhook's verdicts: no generated
	// ValidatingAdmissionPolicy is to answer first (package vap tests them).
	mopts.VAP.CreatePolicies, mopts.VAP.CreateBindings = false, false
	// The manager is ready once the engine is loaded and the webhook
	// answers; then the configuration must reach the API server.
	m, err := managertest.StartWebhook(env.Config, env.Client, mopts, waitTimeout)
	if err != nil {
		return nil, err
	}
	return &harness{opts: m.Webhook, logs: logs, stop: m.Stop}, nil
}

// syncBuffer collects the manager's logs for tests to search.
type syncBuffer = testenv.Buffer

// warnings collects the API server's warnings for one client.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// warningClient is a client whose warnings the test can read.
func warningClient(t *testing.T) (client.Client, *warnings) {
	t.Helper()
	w := &warnings{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = w
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, w
}

// eventually polls cond until it holds, failing the test with the last
// error when waitTimeout passes.
func eventually(t *testing.T, what string, cond func(ctx context.Context) error) {
	t.Helper()
	testenv.Eventually(t, testenv.Poll{Timeout: waitTimeout, Interval: 200 * time.Millisecond}, what, cond)
}

// createPolicy creates a template or constraint (retrying while a
// constraint's kind is not served yet) and deletes it when the test ends.
func createPolicy(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := testenv.Parse(t, doc)
	testenv.Create(t, env.Client, u, waitTimeout)
	t.Cleanup(func() {
		if err := env.Client.Delete(context.Background(), u); client.IgnoreNotFound(err) != nil && !meta.IsNoMatchError(err) {
			t.Errorf("deleting %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	})
	return u
}
