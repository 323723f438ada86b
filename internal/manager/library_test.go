package manager_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/portcullis-dev/portcullis/internal/manifest"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// libraryPolicy is one gatekeeper-library policy: its template and the
// constraint of its first sample.
type libraryPolicy struct {
	dir        string
	template   *unstructured.Unstructured
	constraint *unstructured.Unstructured
}

// readLibrary reads every directory with a template.yaml under
// ../shared/gatekeeper-library/library, or skips the test without it.
func readLibrary(t *testing.T) []libraryPolicy {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(root, "..", "shared", "gatekeeper-library", "library")
	if _, err := os.Stat(lib); err != nil {
		if testenv.InCI() {
			t.Fatalf("gatekeeper-library not found at %s (CI must have shared/ beside the repository)", lib)
		}
		t.Skipf("Skipping: gatekeeper-library not found at %s (it comes from shared/ beside this repository)", lib)
	}
	files, err := filepath.Glob(filepath.Join(lib, "*", "*", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []libraryPolicy
	for _, f := range files {
		dir := filepath.Dir(f)
		p := libraryPolicy{dir: dir, template: readOne(t, f)}
		samples, _ := filepath.Glob(filepath.Join(dir, "samples", "*", "constraint.yaml"))
		sort.Strings(samples)
		if len(samples) == 0 {
			t.Fatalf("%s: no samples/*/constraint.yaml", dir)
		}
		p.constraint = readOne(t, samples[0])
		out = append(out, p)
	}
	return out
}

func readOne(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	docs, err := manifest.ReadPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", path, len(docs))
	}
	return docs[0].Object
}

// TestGatekeeperLibrary applies every gatekeeper-library template at once,
// then the first sample constraint of each: every template must be created
// and Ready, and every constraint enforced. The time they take is logged.
func TestGatekeeperLibrary(t *testing.T) {
	policies := readLibrary(t)
	m := startManager(t, startOpts{podID: "pod-library"})
	begin := time.Now()
	for _, p := range policies {
		create(t, p.template)
	}
	for _, p := range policies {
		create(t, p.constraint)
	}
	for _, p := range policies {
		eventually(t, p.template.GetName()+" to be created and Ready", func(ctx context.Context) (bool, error) {
			return templateLoaded(ctx, p.template.GetName(), m.podID)
		})
	}
	templatesReady := time.Since(begin)
	for _, p := range policies {
		c := p.constraint
		eventually(t, c.GetKind()+" "+c.GetName()+" to be enforced", func(ctx context.Context) (bool, error) {
			return constraintEnforced(ctx, c.GetKind(), c.GetName(), m.podID)
		})
	}
	allReady := time.Since(begin)
	tmpls, cons := m.Engine().Counts()
	if tmpls != len(policies) || cons != len(policies) {
		t.Errorf("engine holds %d templates and %d constraints, want %d of each", tmpls, cons, len(policies))
	}
	t.Logf("%d gatekeeper-library templates created and Ready in %s; with one sample constraint each enforced in %s",
		len(policies), templatesReady.Round(time.Millisecond), allReady.Round(time.Millisecond))

	// A restarted manager rebuilds all of it before it is ready.
	m.stop()
	restarted := time.Now()
	m = startManager(t, startOpts{podID: "pod-library"})
	eventually(t, "the restarted manager to be ready", func(context.Context) (bool, error) {
		return m.Ready() == nil, m.Ready()
	})
	t.Logf("A restarted manager was ready with the %d templates and %d constraints in %s",
		len(policies), len(policies), time.Since(restarted).Round(time.Millisecond))
	if tmpls, cons := m.Engine().Counts(); tmpls != len(policies) || cons != len(policies) {
		t.Errorf("after the restart, the engine holds %d templates and %d constraints when ready, want %d of each", tmpls, cons, len(policies))
	}
}
