package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-dev/portcullis/internal/manager"
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
process (webhook by URL on 127.0.0.1, audit every 30s writing PolicyReports),
apply the templates/ library with its sample constraints (unless
--no-samples), and write <data-dir>/kubeconfig. Prints "portcullis dev: ready" once everything serves.
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

// runDev runs `portcullis dev` in named steps: take the data dir's lock,
// start the control plane, then the manager, apply the samples, and say it
// is ready; then it serves until ctx ends or the manager stops. What a step
// started is stopped, in reverse order, when runDev returns.
func runDev(ctx context.Context, o devOptions, stdout, stderr io.Writer) (retErr error) {
	begin := time.Now()
	dataDir, unlock, err := devLock(o.dataDir, stderr)
	if err != nil {
		return err
	}
	defer unlock()
	if o.readyFile != "" {
		_ = os.Remove(o.readyFile)
	}
	logger, logFile, err := devLogger(dataDir)
	if err != nil {
		return err
	}
	defer logFile.Close()
	assets, err := devAssets(ctx, o.assetsDir, stderr)
	if err != nil {
		return err
	}
	startCtx, cancelStart := context.WithTimeout(ctx, o.timeout)
	defer cancelStart()

	fmt.Fprintf(stderr, "portcullis dev: starting etcd and kube-apiserver (data in %s, logs in %s)\n", dataDir, logFile.Name())
	te, cfg, err := startDevControlPlane(dataDir, assets)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stderr, "portcullis dev: stopping kube-apiserver and etcd")
		if err := te.Stop(); err != nil && retErr == nil {
			retErr = fmt.Errorf("stopping the control plane: %w", err)
		}
	}()

	m, err := startDevManager(startCtx, cfg, logger, stderr)
	if err != nil {
		return err
	}
	defer func() {
		if err := m.stop(stderr); err != nil && retErr == nil {
			retErr = err
		}
	}()

	if !o.noSamples {
		if err := devSamples(startCtx, cfg, m.client, o.templatesDir, stderr); err != nil {
			return err
		}
	}

	kubeconfig, err := devWriteKubeconfig(te, dataDir)
	if err != nil {
		return err
	}
	if err := devReady(o, kubeconfig, time.Since(begin), stdout, stderr); err != nil {
		return err
	}
	if o.readyFile != "" {
		defer os.Remove(o.readyFile)
	}

	select {
	case <-ctx.Done():
		return nil
	case err := <-m.done:
		m.done <- err
		return manager.Stopped(err)
	}
}

// devLock creates the data dir and takes its lock, before anything else
// touches it: one instance per data dir. The lock file holds the PID;
// unlock releases it.
func devLock(dir string, stderr io.Writer) (dataDir string, unlock func(), err error) {
	dataDir, err = filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dataDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			fmt.Fprintf(stderr, "portcullis dev: another portcullis dev is already running with data dir %s; stop it first\n", dataDir)
			return "", nil, exitError{code: 1}
		}
		return "", nil, fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	_ = lock.Truncate(0)
	fmt.Fprintf(lock, "%d\n", os.Getpid())
	return dataDir, func() {
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	}, nil
}

// devLogger sends the logs of the manager, controller-runtime and klog to
// <dataDir>/portcullis.log; the caller closes the file.
func devLogger(dataDir string) (logr.Logger, *os.File, error) {
	logFile, err := os.OpenFile(filepath.Join(dataDir, "portcullis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return logr.Logger{}, nil, err
	}
	logger := zap.New(zap.WriteTo(logFile), zap.UseDevMode(true))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	return logger, logFile, nil
}

// devReady prints the "try this" block and the ready line, and writes
// the ready file with the kubeconfig's path.
func devReady(o devOptions, kubeconfig string, took time.Duration, stdout, stderr io.Writer) error {
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
	fmt.Fprintf(stderr, "portcullis dev: up in %s; Ctrl-C stops it\n", took.Round(100*time.Millisecond))
	fmt.Fprintln(stdout, devReadyLine)
	if o.readyFile != "" {
		if err := os.WriteFile(o.readyFile, []byte(kubeconfig+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
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
