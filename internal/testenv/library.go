package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/gklibrary"
)

// LibraryPath returns the gatekeeper-library's library directory, in
// shared/ beside the repository, and the error of os.Stat on it: not nil
// when it is not there.
func LibraryPath() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, gklibrary.DefaultDir)
	_, err = os.Stat(dir)
	return dir, err
}

// LibraryDir returns LibraryPath. Without the library the test is skipped,
// unless the environment variable CI is set, in which case it fails.
func LibraryDir(t testing.TB) string {
	t.Helper()
	dir, err := LibraryPath()
	if dir == "" {
		t.Fatal(err)
	}
	requireLibrary(t, dir, err)
	return dir
}

// requireLibrary skips the test, or fails it in CI, when err (from
// os.Stat on the library directory dir) is not nil.
func requireLibrary(t testing.TB, dir string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("gatekeeper-library not found at %s (CI must have shared/ beside the repository): %v", dir, err)
		return
	}
	t.Skipf("Skipping: gatekeeper-library not found at %s (it comes from shared/ beside this repository)", dir)
}

// MutationLibraryDir returns the gatekeeper-library's mutation directory,
// beside its library directory in shared/. Without it the test is
// skipped, unless the environment variable CI is set, in which case it
// fails.
func MutationLibraryDir(t testing.TB) string {
	t.Helper()
	dir, err := LibraryPath()
	if dir == "" {
		t.Fatal(err)
	}
	dir = filepath.Join(filepath.Dir(dir), "mutation")
	_, err = os.Stat(dir)
	requireLibrary(t, dir, err)
	return dir
}

// Library reads the gatekeeper-library in LibraryDir, every sample too
// (gklibrary.ReadAll): the test is skipped without it (failed in CI), and
// fails if the library holds no template.
func Library(t testing.TB) []gklibrary.Policy {
	t.Helper()
	dir := LibraryDir(t)
	lib, err := gklibrary.ReadAll(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(lib) == 0 {
		t.Fatalf("no template.yaml in %s", dir)
	}
	return lib
}

// BenchPod is hack/bench-webhook/pod.json, the Pod `make bench-webhook`
// sends, with its @@SUFFIX@@, @@OBJUID@@, @@TAG@@ and @@SLEEP@@ still to
// be replaced.
func BenchPod(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "hack", "bench-webhook", "pod.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
