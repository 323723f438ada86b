package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	frameworksapis "github.com/open-policy-agent/frameworks/constraint/pkg/apis"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	mutationsv1 "github.com/portcullis-dev/portcullis/api/mutations/v1"
	mutationsv1alpha1 "github.com/portcullis-dev/portcullis/api/mutations/v1alpha1"
	mutationsv1beta1 "github.com/portcullis-dev/portcullis/api/mutations/v1beta1"
)

const (
	modulePath = "github.com/portcullis-dev/portcullis"

	// assetsEnv names the directory holding kube-apiserver and etcd, as in
	// envtest itself. Unset, <repo>/bin/k8s is used (see `make envtest-assets`).
	assetsEnv = "KUBEBUILDER_ASSETS"

	// startTimeoutEnv overrides the time each control-plane binary may take to
	// start; envtest reads it too.
	startTimeoutEnv     = "KUBEBUILDER_CONTROLPLANE_START_TIMEOUT"
	defaultStartTimeout = 2 * time.Minute
)

// ErrNoAssets reports that the control-plane binaries are not there.
var ErrNoAssets = errors.New("control-plane binaries not found")

// Env is a running control plane.
type Env struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client using Scheme.
	Client client.Client
	// Scheme knows client-go's types, apiextensions/v1 and the frameworks
	// ConstraintTemplate versions.
	Scheme *k8sruntime.Scheme
	// Environment is the underlying envtest environment.
	Environment *envtest.Environment
	// StartupTime is how long the control plane took to start and install CRDs.
	StartupTime time.Duration
}

// Start starts a control plane for the test and stops it when the test and
// its subtests end. Call it once per package (from a TestMain via Run, or from
// one test) rather than once per test: a start takes seconds.
//
// When the binaries are missing the test is skipped, unless the environment
// variable CI is set, in which case it fails: CI must never skip these tests.
func Start(t testing.TB) *Env {
	t.Helper()
	env, err := Run()
	if errors.Is(err, ErrNoAssets) && !InCI() {
		t.Skipf("Skipping envtest: %v; run `make envtest-assets` (or `make test`) to build them", err)
	}
	if err != nil {
		t.Fatalf("Starting envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("Stopping envtest: %v", err)
		}
	})
	return env
}

// Run starts a control plane without a testing.TB, for use from TestMain.
// The caller must call Stop. It returns an error wrapping ErrNoAssets when the
// binaries are missing; the caller decides whether that skips (see InCI).
func Run() (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}

	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}

	te := &envtest.Environment{
		// The rendered CRDs (bases plus patches, see config/crd), as the
		// manager installs them.
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "crds.yaml")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
	}
	if os.Getenv(startTimeoutEnv) == "" {
		te.ControlPlaneStartTimeout = defaultStartTimeout
	}
	// envtest's own kubectl lookup is KUBEBUILDER_ASSETS only; our assets
	// directory has none, so use the one on PATH for tests that want it.
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		te.ControlPlane.KubectlPath = kubectl
	}

	begin := time.Now()
	cfg, err := te.Start()
	if err != nil {
		// Start can leave etcd running when the API server fails.
		_ = te.Stop()
		return nil, fmt.Errorf("starting control plane from %s: %w", assets, err)
	}
	started := time.Since(begin)

	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, Environment: te, StartupTime: started}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	return e.Environment.Stop()
}

// NewScheme returns a scheme with client-go's types, apiextensions/v1,
// every version of the frameworks ConstraintTemplate and of the mutators.
func NewScheme() (*k8sruntime.Scheme, error) {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme,
		apiextensionsv1.AddToScheme,
		frameworksapis.AddToScheme,
		mutationsv1.AddToScheme,
		mutationsv1beta1.AddToScheme,
		mutationsv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building scheme: %w", err)
		}
	}
	return s, nil
}

// MustScheme is NewScheme for callers that cannot handle an error.
func MustScheme() *k8sruntime.Scheme {
	s, err := NewScheme()
	utilruntime.Must(err)
	return s
}

// InCI reports whether the environment variable CI is set to a true value
// (anything but "", "0" or "false").
func InCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "", "0", "false":
		return false
	}
	return true
}

// AssetsDir returns the directory holding kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS if set, else <repo>/bin/k8s. The error wraps ErrNoAssets
// when either binary is missing.
func AssetsDir() (string, error) {
	return assetsDir("kube-apiserver", "etcd")
}

// DevAssetsDir is AssetsDir for `portcullis dev`, which also runs
// kube-controller-manager (built by `make envtest-assets` too).
func DevAssetsDir() (string, error) {
	return assetsDir("kube-apiserver", "etcd", "kube-controller-manager")
}

func assetsDir(names ...string) (string, error) {
	dir := os.Getenv(assetsEnv)
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin", "k8s")
	}
	var missing []string
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return dir, fmt.Errorf("%w: %s missing in %s", ErrNoAssets, strings.Join(missing, " and "), dir)
	}
	return dir, nil
}

// RepoRoot returns the directory holding this module's go.mod. It walks up
// from the working directory (a test's package directory), then from this
// source file.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if isModuleRoot(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("no go.mod for module %s above %v", modulePath, starts)
}

func isModuleRoot(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == modulePath
		}
	}
	return false
}
