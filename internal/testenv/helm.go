package testenv

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Helm returns the helm binary that `make helm` builds into bin/helm, or
// $HELM when set. Without it the test is skipped, unless CI is set, where
// it fails: `make test` builds it first.
func Helm(t testing.TB) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if InCI() {
			t.Fatalf("%s not found: `make helm` builds it (make test does)", bin)
		}
		t.Skipf("Skipping: %s not found; `make helm` builds it", bin)
	}
	return bin
}

// RunHelm runs helm with args and returns its standard output; a failure
// fails the test with helm's standard error.
func RunHelm(t testing.TB, helm string, args ...string) []byte {
	t.Helper()
	out, stderr, err := TryHelm(t, helm, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// TryHelm runs helm with args, with a configuration and cache of the
// test's own, and returns its standard output and standard error.
func TryHelm(t testing.TB, helm string, args ...string) (stdout []byte, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"))
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	out, err := cmd.Output()
	return out, errBuf.String(), err
}
