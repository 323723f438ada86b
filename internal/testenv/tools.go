package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Kubectl runs kubectl on PATH against the control plane and returns its
// output, failing the test if it fails; without kubectl the test is
// skipped.
func (e *Env) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skipf("Skipping: kubectl not found on PATH (the checks before it ran)")
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, e.Environment.KubeConfig, 0o600); err != nil {
		t.Fatalf("writing kubeconfig: %v", err)
	}
	// kubectl's discovery cache is keyed by host and port: another test's
	// API server on the same port would leave it kinds this one lacks.
	args = append([]string{"--kubeconfig", kubeconfig, "--cache-dir", filepath.Join(t.TempDir(), "kube-cache")}, args...)
	out, err := exec.CommandContext(t.Context(), bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// FindMetric returns the first metric called name in controller-runtime's
// registry whose labels include labels.
func FindMetric(t testing.TB, name string, labels map[string]string) (*dto.Metric, bool) {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				return m, true
			}
		}
	}
	return nil, false
}

func hasLabels(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// BuildPortcullis builds the portcullis binary from the repository's root
// into dir and returns its path.
func BuildPortcullis(t testing.TB, dir string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "portcullis")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
