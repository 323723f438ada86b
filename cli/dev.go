package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-dev/portcullis/internal/loopback"
	"github.com/portcullis-dev/portcullis/internal/manager"
	"github.com/portcullis-dev/portcullis/internal/manifest"
)

// devReadyLine is printed once everything serves.
const devReadyLine = "portcullis dev: ready"

// The namespaces of the "try this" block. The sample constraints of
// templates/requiredlabels require the label test (namespace-must-have-test),
// and owner matching ^[a-z][a-z0-9-]*\.team$ plus test in true|false
// (namespace-owner-and-test).
const (
	devRefusedNamespace  = "demo-refused"
	devAdmittedNamespace = "demo-ok"
)

type devOptions struct {
	dataDir      string
	readyFile    string
	assetsDir    string
	templatesDir string
	noSamples    bool
	timeout      time.Duration
}

func newDevCmd() *cobra.Command {
	o := devOptions{dataDir: ".dev", templatesDir: "templates", timeout: 5 * time.Minute}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local control plane (etcd, kube-apiserver) with Portcullis and the sample policies",
		Long: `Run etcd and kube-apiserver on loopback ports, with their state under
--data-dir so it survives a restart, install the CRDs, run the manager in this
process (webhook by URL on 127.0.0.1, audit every 30s), apply the templates/
library with its sample constraints (unless --no-samples), and write
<data-dir>/kubeconfig. Prints "portcullis dev: ready" once everything serves.
SIGINT or SIGTERM stops everything. Only one instance may use a data dir.

The control-plane binaries come from --assets-dir (default $KUBEBUILDER_ASSETS,
else bin/k8s); when missing they are built with hack/build-control-plane.sh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDev(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", o.dataDir, "directory of etcd's data, the API server's certificates, the kubeconfig, the logs and the lock")
	f.StringVar(&o.readyFile, "ready-file", "", "file to write once ready")
	f.StringVar(&o.assetsDir, "assets-dir", "", "directory of kube-apiserver and etcd (default $KUBEBUILDER_ASSETS, else bin/k8s)")
	f.StringVar(&o.templatesDir, "templates", o.templatesDir, "the template library to apply")
	f.BoolVar(&o.noSamples, "no-samples", false, "apply no templates or sample constraints")
	f.DurationVar(&o.timeout, "timeout", o.timeout, "how long startup may take")
	return cmd
}

func runDev(ctx context.Context, o devOptions, stdout, stderr io.Writer) (retErr error) {
	begin := time.Now()
	dataDir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	// One instance per data dir: take the lock before touching anything else.
	lock, err := os.OpenFile(filepath.Join(dataDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			fmt.Fprintf(stderr, "portcullis dev: another portcullis dev is already running with data dir %s; stop it first\n", dataDir)
			return exitError{code: 1}
		}
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	_ = lock.Truncate(0)
	fmt.Fprintf(lock, "%d\n", os.Getpid())
	if o.readyFile != "" {
		_ = os.Remove(o.readyFile)
	}

	logFile, err := os.OpenFile(filepath.Join(dataDir, "portcullis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	logger := zap.New(zap.WriteTo(logFile), zap.UseDevMode(true))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)

	assets, err := devAssets(ctx, o.assetsDir, stderr)
	if err != nil {
		return err
	}

	startCtx, cancelStart := context.WithTimeout(ctx, o.timeout)
	defer cancelStart()

	fmt.Fprintf(stderr, "portcullis dev: starting etcd and kube-apiserver (data in %s, logs in %s)\n", dataDir, logFile.Name())
	te := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 2 * time.Minute}
	etcd := &envtest.Etcd{DataDir: filepath.Join(dataDir, "etcd")}
	api := &envtest.APIServer{CertDir: filepath.Join(dataDir, "apiserver")}
	te.ControlPlane.Etcd, te.ControlPlane.APIServer = etcd, api
	for _, d := range []string{etcd.DataDir, api.CertDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
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
			return err
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
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer func() {
		fmt.Fprintln(stderr, "portcullis dev: stopping kube-apiserver and etcd")
		if err := te.Stop(); err != nil && retErr == nil {
			retErr = fmt.Errorf("stopping the control plane: %w", err)
		}
	}()

	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	opts := manager.NewOptions()
	opts.PodID = "dev"
	opts.Audit.Interval = 30 * time.Second
	opts.Webhook.URLHost = "127.0.0.1"
	if opts.Webhook.Port, err = loopback.FreePort(); err != nil {
		return err
	}
	metricsPort, err := loopback.FreePort()
	if err != nil {
		return err
	}
	probePort, err := loopback.FreePort()
	if err != nil {
		return err
	}
	opts.MetricsBindAddress = fmt.Sprintf("127.0.0.1:%d", metricsPort)
	opts.HealthProbeBindAddress = fmt.Sprintf("127.0.0.1:%d", probePort)
	if err := opts.Complete(); err != nil {
		return err
	}
	wopts := opts.Webhook
	wopts.Namespace = opts.Namespace
	if err := wopts.Complete(); err != nil {
		return err
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	vwc.Name = wopts.ConfigurationName
	// A configuration left by a crash points at a closed port and fails
	// closed for namespaces: remove it before anything else.
	if err := c.Delete(startCtx, vwc); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting a stale %s: %w", vwc.Name, err)
	}
	ns := &corev1.Namespace{}
	ns.Name = opts.Namespace
	if err := c.Create(startCtx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
	}

	fmt.Fprintln(stderr, "portcullis dev: starting the manager (CRDs, controllers, webhook, audit every 30s)")
	m, err := manager.New(cfg, opts)
	if err != nil {
		return err
	}
	mgrCtx, cancelMgr := context.WithCancel(ctrl.LoggerInto(context.Background(), logger))
	done := make(chan error, 1)
	go func() { done <- m.Start(mgrCtx) }()
	defer func() {
		fmt.Fprintln(stderr, "portcullis dev: stopping the manager")
		cancelMgr()
		delCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Delete(delCtx, vwc); err != nil && !apierrors.IsNotFound(err) {
			fmt.Fprintf(stderr, "portcullis dev: deleting %s: %v\n", vwc.Name, err)
		}
		if err := <-done; err != nil && retErr == nil {
			retErr = fmt.Errorf("manager: %w", err)
		}
	}()
	if err := m.WaitReady(startCtx, "http://"+opts.HealthProbeBindAddress+"/readyz", done); err != nil {
		return err
	}

	if !o.noSamples {
		fmt.Fprintf(stderr, "portcullis dev: applying %s and its sample constraints\n", o.templatesDir)
		if err := devApplyLibrary(startCtx, cfg, o.templatesDir, stderr); err != nil {
			return err
		}
		if err := devWaitEnforced(startCtx, c); err != nil {
			return err
		}
	}

	user, err := te.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dataDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}

	fmt.Fprintf(stdout, `
Try this:

    export KUBECONFIG=%s
    %s
    %s
    kubectl get constraints

`, kubeconfig, devRefusedCommand(), devAdmittedCommand())
	if o.noSamples {
		fmt.Fprintln(stdout, "(with --no-samples no constraint is loaded: both namespaces are admitted)")
	}
	fmt.Fprintf(stderr, "portcullis dev: up in %s; Ctrl-C stops it\n", time.Since(begin).Round(100*time.Millisecond))
	fmt.Fprintln(stdout, devReadyLine)
	if o.readyFile != "" {
		if err := os.WriteFile(o.readyFile, []byte(kubeconfig+"\n"), 0o644); err != nil {
			return err
		}
		defer os.Remove(o.readyFile)
	}

	select {
	case <-ctx.Done():
		return nil
	case err := <-done:
		done <- err
		return fmt.Errorf("the manager stopped: %w", err)
	}
}

// devRefusedCommand creates a namespace without the labels the samples
// require.
func devRefusedCommand() string {
	return "kubectl create namespace " + devRefusedNamespace + "   # refused: no owner and test labels"
}

// devAdmittedCommand creates a namespace with them.
func devAdmittedCommand() string {
	return "kubectl create namespace " + devAdmittedNamespace + " --dry-run=client -o yaml | kubectl label -f - --local owner=demo.team test=true -o yaml | kubectl apply -f -"
}

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

// devApplyLibrary applies templates/*/template.yaml, then every
// templates/*/samples/*/constraint.yaml, retrying each constraint until the
// controllers have created its kind.
func devApplyLibrary(ctx context.Context, cfg *rest.Config, dir string, stderr io.Writer) error {
	templates, err := filepath.Glob(filepath.Join(dir, "*", "template.yaml"))
	if err != nil {
		return err
	}
	if len(templates) == 0 {
		return fmt.Errorf("no %s/*/template.yaml found (run from the repository, or pass --templates)", dir)
	}
	constraints, err := filepath.Glob(filepath.Join(dir, "*", "samples", "*", "constraint.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(templates)
	sort.Strings(constraints)
	newClient := func() (client.Client, error) { return client.New(cfg, client.Options{}) }
	c, err := newClient()
	if err != nil {
		return err
	}
	apply := func(path string, retry bool) error {
		docs, err := manifest.ReadPath(path, nil)
		if err != nil {
			return err
		}
		for _, d := range docs {
			obj := d.Object.DeepCopy()
			err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
				err := c.Patch(ctx, obj, client.Apply, client.FieldOwner("portcullis-dev"), client.ForceOwnership) //nolint:staticcheck
				if err == nil {
					return true, nil
				}
				if retry && (meta.IsNoMatchError(err) || apierrors.IsNotFound(err)) {
					if nc, cerr := newClient(); cerr == nil {
						c = nc
					}
					return false, nil
				}
				return false, err
			})
			if err != nil {
				return fmt.Errorf("applying %s (%s %s): %w", path, obj.GetKind(), obj.GetName(), err)
			}
		}
		return nil
	}
	for _, p := range templates {
		if err := apply(p, false); err != nil {
			return err
		}
	}
	for _, p := range constraints {
		if err := apply(p, true); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "portcullis dev: applied %d templates and %d sample constraints\n", len(templates), len(constraints))
	return nil
}

// devWaitEnforced waits until the webhook refuses the namespace of the
// refused command and admits the one of the admitted command (server-side
// dry runs, nothing is stored).
func devWaitEnforced(ctx context.Context, c client.Client) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		bad := &corev1.Namespace{}
		bad.Name = devRefusedNamespace
		err := c.Create(ctx, bad, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "denied") {
			last = fmt.Errorf("%s is not refused yet (%w)", devRefusedNamespace, err)
			return false, nil
		}
		good := &corev1.Namespace{}
		good.Name = devAdmittedNamespace
		good.Labels = map[string]string{"owner": "demo.team", "test": "true"}
		if err := c.Create(ctx, good, client.DryRunAll); err != nil && !apierrors.IsAlreadyExists(err) {
			last = fmt.Errorf("%s is not admitted: %w", devAdmittedNamespace, err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the sample constraints to be enforced: %w (last: %w)", err, last)
	}
	return nil
}
