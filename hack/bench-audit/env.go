package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/portcullis-dev/portcullis/internal/gklibrary"
	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// benchPodID is the audit process's ID in status.byPod.
const benchPodID = "bench-audit"

type controlPlane struct {
	env     *envtest.Environment
	config  *rest.Config
	client  client.Client
	dir     string
	started time.Duration
}

// startControlPlane starts envtest with room for many Services: the default
// service range is a /24.
func startControlPlane() (*controlPlane, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := testenv.AssetsDir()
	if err != nil {
		return nil, fmt.Errorf("%w (run `make envtest-assets`)", err)
	}
	scheme, err := testenv.NewScheme()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-audit-")
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "crds.yaml")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		Scheme:                   scheme,
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	te.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/12")
	begin := time.Now()
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 5000, 10000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	return &controlPlane{env: te, config: cfg, client: c, dir: dir, started: time.Since(begin)}, nil
}

func (cp *controlPlane) stop() {
	if err := cp.env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
	}
	_ = os.RemoveAll(cp.dir)
}

// key names a policy by its constraint.
func key(p gklibrary.Policy) string { return p.Constraint.GetKind() + "/" + p.Constraint.GetName() }

// readLibrary reads every template of the library with its first sample
// constraint (samples/*/constraint.yaml, sorted).
func readLibrary(lib string) ([]gklibrary.Policy, error) {
	if lib == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			return nil, err
		}
		lib = filepath.Join(root, gklibrary.DefaultDir)
	}
	policies, err := gklibrary.ReadTemplates(lib)
	if err == nil && len(policies) == 0 {
		err = errors.New("no templates")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w (it comes from shared/ beside the repository; set -library)", lib, err)
	}
	for _, p := range policies {
		if p.Constraint == nil {
			return nil, fmt.Errorf("%s: no samples/*/constraint.yaml", p.Files.Dir)
		}
	}
	return policies, nil
}

// createConstraints creates each constraint once its kind is served (the
// audit process's manager creates the CRDs), then waits until the audit
// process enforces them all.
func createConstraints(ctx context.Context, c client.Client, policies []gklibrary.Policy) error {
	poll := testenv.Poll{Timeout: 5 * time.Minute, Interval: 200 * time.Millisecond}
	for _, p := range policies {
		if err := testenv.CreateServed(ctx, c, p.Constraint, poll); err != nil {
			return fmt.Errorf("creating constraint %s: %w", key(p), err)
		}
	}
	for _, p := range policies {
		err := poll.Until(ctx, func(ctx context.Context) error {
			return testenv.ConstraintEnforced(ctx, c, p.Constraint.GetKind(), p.Constraint.GetName(), benchPodID)
		})
		if err != nil {
			return fmt.Errorf("constraint %s not enforced: %w", key(p), err)
		}
	}
	return nil
}
