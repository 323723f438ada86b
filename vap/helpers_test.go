package vap_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/manager/managertest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
	"github.com/portcullis-dev/portcullis/vap"
)

// waitTimeout bounds every poll: generous, as the machine may be busy,
// and a binding waits --default-wait-for-vapb-generation (30 s) first.
const waitTimeout = 3 * time.Minute

// managers counts the managers running: with none, a deleted template's
// CRD is deleted by the test, as the garbage collector envtest lacks would.
var managers atomic.Int32

var objects = &testenv.Objects{Timeout: waitTimeout, DeleteCRDs: func() bool { return managers.Load() == 0 }}

func needEnv(t *testing.T) {
	t.Helper()
	if env == nil {
		t.Skip("Skipping: no envtest control plane (run `make envtest-assets`)")
	}
	objects.Client = env.Client
}

// startManager runs a manager that generates policies, with no webhook
// (none is registered with the API server), until the test ends or stop
// is called; opts, if set, changes its options.
func startManager(t *testing.T, podID string, opts func(*manager.Options)) (m *managertest.Manager, stop func()) {
	t.Helper()
	o := managertest.Options(podID)
	o.VAP = vap.NewOptions()
	if opts != nil {
		opts(&o)
	}
	m, err := managertest.Start(env.Config, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	managers.Add(1)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			managers.Add(-1)
			if err := m.Stop(); err != nil {
				t.Errorf("manager %s: %v", podID, err)
			}
		})
	}
	t.Cleanup(stop)
	return m, stop
}

func eventually(t *testing.T, what string, cond func(ctx context.Context) error) {
	t.Helper()
	testenv.Eventually(t, testenv.Poll{Timeout: waitTimeout}, what, cond)
}

func getPolicy(ctx context.Context, name string) (*admissionregistrationv1.ValidatingAdmissionPolicy, error) {
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{}
	return p, env.Client.Get(ctx, client.ObjectKey{Name: name}, p)
}

func getBinding(ctx context.Context, name string) (*admissionregistrationv1.ValidatingAdmissionPolicyBinding, error) {
	b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	return b, env.Client.Get(ctx, client.ObjectKey{Name: name}, b)
}

// gone is nil once the object of that name is not found.
func gone(ctx context.Context, obj client.Object, name string) error {
	err := env.Client.Get(ctx, client.ObjectKey{Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%T %s still exists", obj, name)
}

func getObject(ctx context.Context, apiVersion, kind, name string) (*unstructured.Unstructured, error) {
	return getObjectFrom(ctx, env.Client, apiVersion, kind, name)
}

func getObjectFrom(ctx context.Context, c client.Client, apiVersion, kind, name string) (*unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	return u, c.Get(ctx, client.ObjectKey{Name: name}, u)
}

// vapStatus returns podID's vapGenerationStatus of a template, once its
// entry reports the template's generation; nil when it has none.
func vapStatus(ctx context.Context, template, podID string) (map[string]any, error) {
	u, err := getObject(ctx, "templates.gatekeeper.sh/v1", "ConstraintTemplate", template)
	if err != nil {
		return nil, err
	}
	e := testenv.ByPod(u, podID)
	if e == nil {
		return nil, fmt.Errorf("no byPod entry for %s: %v", podID, u.Object["status"])
	}
	if g, _ := e["observedGeneration"].(int64); g != u.GetGeneration() {
		return nil, fmt.Errorf("byPod entry at generation %d, want %d", g, u.GetGeneration())
	}
	if errs, _ := e["errors"].([]any); len(errs) > 0 {
		return nil, fmt.Errorf("template errors: %v", errs)
	}
	s, _ := e["vapGenerationStatus"].(map[string]any)
	return s, nil
}

// policyState waits until podID reports the template's policy in state,
// and returns its vapGenerationStatus.
func policyState(t *testing.T, template, podID, state string) map[string]any {
	t.Helper()
	var out map[string]any
	eventually(t, fmt.Sprintf("%s's vapGenerationStatus to be %s", template, state), func(ctx context.Context) error {
		s, err := vapStatus(ctx, template, podID)
		if err != nil {
			return err
		}
		if s["state"] != state {
			return fmt.Errorf("vapGenerationStatus %v", s)
		}
		out = s
		return nil
	})
	return out
}

// bindingStatus returns the vap.k8s.io entry of podID's
// enforcementPointsStatus of a constraint, once podID reports the
// constraint's generation enforced; nil when there is none.
func bindingStatus(ctx context.Context, kind, name, podID string) (map[string]any, error) {
	e, err := testenv.ConstraintEntry(ctx, env.Client, kind, name, podID)
	if err != nil {
		return nil, err
	}
	if e["enforced"] != true {
		return nil, fmt.Errorf("not enforced: %v", e)
	}
	eps, _ := e["enforcementPointsStatus"].([]any)
	for _, ep := range eps {
		if m, _ := ep.(map[string]any); m["enforcementPoint"] == vap.EnforcementPoint {
			return m, nil
		}
	}
	return nil, nil
}

// bindingState waits until podID reports the constraint's binding in
// state, and returns its status entry.
func bindingState(t *testing.T, kind, name, podID, state string) map[string]any {
	t.Helper()
	var out map[string]any
	eventually(t, fmt.Sprintf("%s %s's binding to be %s", kind, name, state), func(ctx context.Context) error {
		s, err := bindingStatus(ctx, kind, name, podID)
		if err != nil {
			return err
		}
		if s["state"] != state {
			return fmt.Errorf("enforcementPointsStatus vap.k8s.io %v", s)
		}
		out = s
		return nil
	})
	return out
}

// warningClient is a client that records the API server's warnings.
type warningClient struct {
	client.Client
	mu       sync.Mutex
	warnings []string
}

func newWarningClient(t *testing.T) *warningClient {
	t.Helper()
	w := &warningClient{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w.Client = c
	return w
}

func (w *warningClient) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

// take returns the warnings recorded and forgets them.
func (w *warningClient) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.warnings
	w.warnings = nil
	return out
}

// configMap is a ConfigMap in ns with the given labels.
func configMap(ns, name string, labels map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
}

func containsAny(list []string, s string) bool {
	return slices.ContainsFunc(list, func(l string) bool { return strings.Contains(l, s) })
}
