package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// fatalT records Fatalf instead of ending the test.
type fatalT struct {
	testing.TB
	ctx   context.Context
	fatal string
}

func (f *fatalT) Helper()                  {}
func (f *fatalT) Context() context.Context { return f.ctx }
func (f *fatalT) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
}

func TestEventually(t *testing.T) {
	n := 0
	testenv.Eventually(t, testenv.Poll{Timeout: time.Minute, Interval: time.Millisecond}, "three checks", func(context.Context) error {
		n++
		if n < 3 {
			return fmt.Errorf("check %d", n)
		}
		return nil
	})
	if n != 3 {
		t.Errorf("cond checked %d times, want 3", n)
	}

	f := &fatalT{TB: t, ctx: t.Context()}
	testenv.Eventually(f, testenv.Poll{Timeout: 50 * time.Millisecond, Interval: time.Millisecond}, "never", func(context.Context) error {
		return errors.New("still not")
	})
	if !strings.Contains(f.fatal, "Timed out after 50ms waiting for never: still not") {
		t.Errorf("Fatalf(%q), want the timeout, what and the last error", f.fatal)
	}

	for _, tc := range []struct {
		ok   bool
		err  error
		want string
	}{
		{true, errors.New("ignored"), ""},
		{false, errors.New("why"), "why"},
		{false, nil, "the condition does not hold"},
	} {
		err := testenv.Holds(func(context.Context) (bool, error) { return tc.ok, tc.err })(t.Context())
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("Holds(%t, %v) = %v, want %q", tc.ok, tc.err, err, tc.want)
		}
	}
}

func TestBuffer(t *testing.T) {
	var b testenv.Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := len(b.String()); got != 400 {
		t.Errorf("%d bytes, want 400", got)
	}
}

func TestParseAll(t *testing.T) {
	objs := testenv.ParseAll(t, "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: B\nmetadata: {name: b}\n")
	if len(objs) != 2 || objs[0].GetKind() != "A" || objs[1].GetName() != "b" {
		t.Errorf("ParseAll = %v", objs)
	}
	f := &fatalT{TB: t, ctx: t.Context()}
	testenv.Parse(f, "kind: [")
	if f.fatal == "" {
		t.Error("Parse of bad YAML: no Fatalf")
	}
}

func TestConstraintEnforced(t *testing.T) {
	constraint := func(gen int64, byPod ...any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"byPod": byPod}}}
		u.SetAPIVersion("constraints.gatekeeper.sh/v1beta1")
		u.SetKind("K8sTest")
		u.SetName("c")
		u.SetGeneration(gen)
		return u
	}
	entry := func(id string, gen int64, enforced bool, errs ...any) map[string]any {
		e := map[string]any{"id": id, "observedGeneration": gen, "enforced": enforced}
		if errs != nil {
			e["errors"] = errs
		}
		return e
	}
	for _, tc := range []struct {
		name string
		obj  *unstructured.Unstructured
		want string // "" for enforced
	}{
		{"enforced", constraint(2, entry("other", 1, false), entry("me", 2, true)), ""},
		{"no entry", constraint(2, entry("other", 2, true)), "no byPod entry for me"},
		{"old generation", constraint(2, entry("me", 1, true)), "byPod entry at generation 1, want 2"},
		{"not enforced", constraint(2, entry("me", 2, false)), "entry map"},
		{"errors", constraint(2, entry("me", 2, true, map[string]any{"code": "x"})), "entry map"},
		{"no constraint", nil, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fake.NewClientBuilder().WithScheme(runtime.NewScheme())
			if tc.obj != nil {
				b = b.WithObjects(tc.obj)
			}
			err := testenv.ConstraintEnforced(t.Context(), b.Build(), "K8sTest", "c", "me")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("ConstraintEnforced: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("ConstraintEnforced: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
