package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/portcullis-dev/portcullis/internal/loopback"
	"github.com/portcullis-dev/portcullis/internal/manager"
)

// devAssets finds the control-plane binaries, building them when missing.
func devAssets(ctx context.Context, dir string, stderr io.Writer) (string, error) {
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		dir = filepath.Join("bin", "k8s")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	missing := func() bool {
		for _, b := range []string{"etcd", "kube-apiserver"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return true
			}
		}
		return false
	}
	if !missing() {
		return dir, nil
	}
	script := filepath.Join("hack", "build-control-plane.sh")
	if _, err := os.Stat(script); err != nil || filepath.Base(dir) != "k8s" {
		return "", fmt.Errorf("kube-apiserver and etcd not found in %s: run `make envtest-assets` (hack/build-control-plane.sh) from the repository, or pass --assets-dir", dir)
	}
	fmt.Fprintf(stderr, "portcullis dev: kube-apiserver and etcd not found in %s; building them with %s (first build ~5-8 minutes)\n", dir, script)
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Env = append(os.Environ(), "BIN_DIR="+filepath.Dir(dir))
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the control plane with %s: %w", script, err)
	}
	if missing() {
		return "", fmt.Errorf("%s ran but kube-apiserver and etcd are still not in %s", script, dir)
	}
	return dir, nil
}

// startDevControlPlane starts etcd and kube-apiserver with their state
// under dataDir, from the binaries in assets.
func startDevControlPlane(dataDir, assets string) (*envtest.Environment, *rest.Config, error) {
	te := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 2 * time.Minute}
	etcd := &envtest.Etcd{DataDir: filepath.Join(dataDir, "etcd")}
	api := &envtest.APIServer{CertDir: filepath.Join(dataDir, "apiserver")}
	te.ControlPlane.Etcd, te.ControlPlane.APIServer = etcd, api
	for _, d := range []string{etcd.DataDir, api.CertDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, nil, err
		}
	}
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		te.ControlPlane.KubectlPath = kubectl
	}
	// envtest only knows the serving CA of certificates it generates in this
	// run: regenerate them (and the kubeconfig) on every start; etcd's data
	// is what persists.
	for _, f := range []string{"apiserver.crt", "apiserver.key"} {
		if err := os.Remove(filepath.Join(api.CertDir, f)); err != nil && !os.IsNotExist(err) {
			return nil, nil, err
		}
	}
	cfg, err := func() (cfg *rest.Config, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		return te.Start()
	}()
	if err != nil {
		_ = te.Stop()
		return nil, nil, fmt.Errorf("starting the control plane: %w", err)
	}
	return te, cfg, nil
}

// devWriteKubeconfig writes <dataDir>/kubeconfig for an admin user and
// returns its path.
func devWriteKubeconfig(te *envtest.Environment, dataDir string) (string, error) {
	user, err := te.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("adding the admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	kubeconfig := filepath.Join(dataDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return "", err
	}
	return kubeconfig, nil
}

// devManager is the manager running in this process.
type devManager struct {
	client client.Client // of the control plane
	vwc    *admissionregistrationv1.ValidatingWebhookConfiguration
	cancel context.CancelFunc
	// done receives the manager's Start result; whoever reads it puts it
	// back.
	done chan error
}

// startDevManager starts the manager (webhook by URL on 127.0.0.1, audit
// every 30s, metrics and probes on free loopback ports) and waits until it
// is ready. A webhook configuration left by a crash is deleted first.
func startDevManager(ctx context.Context, cfg *rest.Config, logger logr.Logger, stderr io.Writer) (*devManager, error) {
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}

	opts := manager.NewOptions()
	opts.PodID = "dev"
	opts.Audit.Interval = 30 * time.Second
	// The webhook's verdicts, as the docs show them: a generated
	// ValidatingAdmissionPolicy would answer first, with its own words.
	opts.VAP.CreatePolicies, opts.VAP.CreateBindings = false, false
	opts.Webhook.URLHost = "127.0.0.1"
	if opts.Webhook.Port, err = loopback.FreePort(); err != nil {
		return nil, err
	}
	if opts.MetricsBindAddress, err = loopback.FreeAddr(); err != nil {
		return nil, err
	}
	if opts.HealthProbeBindAddress, err = loopback.FreeAddr(); err != nil {
		return nil, err
	}
	if err := opts.Complete(); err != nil {
		return nil, err
	}
	wopts := opts.Webhook
	wopts.Namespace = opts.Namespace
	if err := wopts.Complete(); err != nil {
		return nil, err
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	vwc.Name = wopts.ConfigurationName
	// A configuration left by a crash points at a closed port and fails
	// closed for namespaces: remove it before anything else.
	if err := c.Delete(ctx, vwc); err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("deleting a stale %s: %w", vwc.Name, err)
	}
	ns := &corev1.Namespace{}
	ns.Name = opts.Namespace
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}

	fmt.Fprintln(stderr, "portcullis dev: starting the manager (CRDs, controllers, webhook, audit every 30s)")
	m, err := manager.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	mgrCtx, cancel := context.WithCancel(ctrl.LoggerInto(context.Background(), logger))
	d := &devManager{client: c, vwc: vwc, cancel: cancel, done: make(chan error, 1)}
	go func() { d.done <- m.Start(mgrCtx) }()
	if err := m.WaitReady(ctx, "http://"+opts.HealthProbeBindAddress+"/readyz", d.done); err != nil {
		_ = d.stop(stderr) // the wait's error says more
		return nil, err
	}
	return d, nil
}

// stop stops the manager and deletes its webhook configuration, which
// would otherwise point at a closed port.
func (d *devManager) stop(stderr io.Writer) error {
	fmt.Fprintln(stderr, "portcullis dev: stopping the manager")
	d.cancel()
	delCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.client.Delete(delCtx, d.vwc); err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintf(stderr, "portcullis dev: deleting %s: %v\n", d.vwc.Name, err)
	}
	if err := <-d.done; err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	return nil
}
