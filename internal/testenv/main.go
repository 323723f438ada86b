package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// logEnv shows the logs of the code under test on stderr when set.
const logEnv = "PORTCULLIS_TEST_LOG"

// Logging sends controller-runtime's and klog's logs (leader election logs
// through klog) to w, nil meaning nowhere, and to stderr as well when
// PORTCULLIS_TEST_LOG is set.
func Logging(w io.Writer) {
	if w == nil {
		w = io.Discard
	}
	if os.Getenv(logEnv) != "" {
		w = io.MultiWriter(w, os.Stderr)
	}
	logger := zap.New(zap.WriteTo(w), zap.UseDevMode(true))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
}

// Main runs a package's tests around one control plane, for TestMain.
type Main struct {
	// What names the tests in the message printed when the control
	// plane's binaries are missing, e.g. "the audit's envtest tests".
	What string
	// RunWithout runs the tests anyway, with no control plane, when its
	// binaries are missing outside CI, for packages whose unit tests need
	// none (their envtest tests skip); otherwise no test runs.
	RunWithout bool
	// Start, if set, runs once the control plane is up, with it; the
	// function it returns, if not nil, stops what it started after the
	// tests.
	Start func(*Env) (stop func() error, err error)
}

// Run starts the control plane (failing in CI without its binaries), runs
// Start and the tests, stops everything, and returns the exit code.
func (c Main) Run(m *testing.M) int {
	env, err := Run()
	if errors.Is(err, ErrNoAssets) && !InCI() {
		fmt.Printf("Skipping %s: %v; run `make envtest-assets`\n", c.What, err)
		if c.RunWithout {
			return m.Run()
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Starting envtest: %v\n", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "Stopping envtest: %v\n", err)
		}
	}()
	var stop func() error
	if c.Start != nil {
		if stop, err = c.Start(env); err != nil {
			fmt.Fprintf(os.Stderr, "Starting %s: %v\n", c.What, err)
			return 1
		}
	}
	code := m.Run()
	if stop == nil {
		return code
	}
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "Stopping %s: %v\n", c.What, err)
		code = 1
	}
	return code
}

// Create creates obj with c, retrying while its kind is not served yet (a
// constraint whose CRD is being created), and reads it back into obj.
func Create(t testing.TB, c client.Client, obj client.Object, timeout time.Duration) {
	t.Helper()
	if err := CreateServed(t.Context(), c, obj, Poll{Timeout: timeout}); err != nil {
		t.Fatalf("creating %s: %v", describe(obj), err)
	}
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatalf("reading %s back: %v", describe(obj), err)
	}
}

// CreateServed creates a copy of obj with c, retrying as p says while its
// kind is not served yet (a constraint whose CRD is being created).
func CreateServed(ctx context.Context, c client.Client, obj client.Object, p Poll) error {
	var err error
	werr := wait.PollUntilContextTimeout(ctx, p.interval(), p.Timeout, true, func(ctx context.Context) (bool, error) {
		err = c.Create(ctx, obj.DeepCopyObject().(client.Object))
		return !meta.IsNoMatchError(err), nil
	})
	if err == nil {
		return werr
	}
	return err
}

// describe names an object in messages: its kind, or else its Go type,
// and its name.
func describe(obj client.Object) string {
	if kind := obj.GetObjectKind().GroupVersionKind().Kind; kind != "" {
		return kind + " " + obj.GetName()
	}
	return fmt.Sprintf("%T %s", obj, obj.GetName())
}
