package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The binaries `portcullis dev` runs, from the assets dir.
var assetNames = []string{"etcd", "kube-apiserver", "kube-controller-manager"}

// findAssets finds the control-plane binaries, building the missing ones
// with hack/build-control-plane.sh when dir is the repository's bin/k8s.
// Ctrl-C stops the build.
func findAssets(ctx context.Context, dir string, out io.Writer) (string, error) {
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		dir = filepath.Join("bin", "k8s")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("assets dir %s: %w", dir, err)
	}
	dir = abs
	missing := func() []string {
		var m []string
		for _, b := range assetNames {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				m = append(m, b)
			}
		}
		return m
	}
	m := missing()
	if len(m) == 0 {
		return dir, nil
	}
	script := filepath.Join("hack", "build-control-plane.sh")
	if _, err := os.Stat(script); err != nil || filepath.Base(dir) != "k8s" {
		return "", fmt.Errorf("%s not found in %s: run `make envtest-assets` (hack/build-control-plane.sh) from the repository, or pass --assets-dir",
			strings.Join(m, ", "), dir)
	}
	fmt.Fprintf(out, "portcullis dev: %s not found in %s; building with %s (about 5 minutes for etcd and kube-apiserver, 3 more for kube-controller-manager)\n",
		strings.Join(m, ", "), dir, script)
	cmd := exec.Command("bash", script)
	cmd.Env = append(os.Environ(), "BIN_DIR="+filepath.Dir(dir))
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that Ctrl-C stops go build too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("building the control plane with %s: %w", script, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done //nolint:errcheck // killed: its error says only that
		return "", fmt.Errorf("building the control plane: %w", context.Cause(ctx))
	}
	if err != nil {
		return "", fmt.Errorf("building the control plane with %s: %w", script, err)
	}
	if m := missing(); len(m) > 0 {
		return "", fmt.Errorf("%s ran but %s still not in %s", script, strings.Join(m, ", "), dir)
	}
	return dir, nil
}

// assetVersion is the version hack/build-control-plane.sh stamped on a
// binary ("" when unknown).
func assetVersion(assets, name string) string {
	b, err := os.ReadFile(filepath.Join(assets, "."+name+".version"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// controlPlane is etcd and kube-apiserver, run by envtest's ControlPlane
// (not its Environment, which would start them again after we kill them)
// with their state under the data dir.
type controlPlane struct {
	plane *envtest.ControlPlane
	cfg   *rest.Config // an admin's
	// caFile is the API server's serving CA, for kube-controller-manager.
	caFile string
	// saKeyFile signs service account tokens.
	saKeyFile string
	logs      []*os.File
}

func (r *run) logPath(name string) string { return filepath.Join(r.dataDir, name+".log") }

// startControlPlane starts etcd and kube-apiserver and records their PIDs
// as they appear. It waits at most bound, printing progress with the last
// line of their logs; Ctrl-C or the bound kills them.
func (r *run) startControlPlane(ctx context.Context, bound time.Duration) (*controlPlane, error) {
	cp := &controlPlane{}
	etcdLog, err := os.Create(r.logPath("etcd"))
	if err != nil {
		return nil, err
	}
	apiLog, err := os.Create(r.logPath("kube-apiserver"))
	if err != nil {
		etcdLog.Close()
		return nil, err
	}
	cp.logs = []*os.File{etcdLog, apiLog}
	// Our wait bounds the start; envtest's must not end it first.
	etcd := &envtest.Etcd{
		Path: filepath.Join(r.assets, "etcd"), DataDir: filepath.Join(r.dataDir, etcdDir),
		StartTimeout: bound + time.Minute, StopTimeout: 10 * time.Second, Out: etcdLog, Err: etcdLog,
	}
	api := &envtest.APIServer{
		Path: filepath.Join(r.assets, "kube-apiserver"), CertDir: filepath.Join(r.dataDir, apiserverDir),
		StartTimeout: bound + time.Minute, StopTimeout: 10 * time.Second, Out: apiLog, Err: apiLog,
	}
	cp.plane = &envtest.ControlPlane{Etcd: etcd, APIServer: api}
	for _, d := range []string{etcd.DataDir, api.CertDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			cp.closeLogs()
			return nil, err
		}
	}
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		cp.plane.KubectlPath = kubectl
	}
	// envtest only knows the serving CA of certificates it generates in
	// this run: regenerate them (and the kubeconfig) on every start; etcd's
	// data is what persists.
	for _, f := range []string{"apiserver.crt", "apiserver.key"} {
		if err := os.Remove(filepath.Join(api.CertDir, f)); err != nil && !os.IsNotExist(err) {
			cp.closeLogs()
			return nil, err
		}
	}

	started := make(chan error, 1)
	go func() {
		var err error
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("%v", p)
			}
			started <- err
		}()
		err = cp.plane.Start()
	}()
	err = waitFor(ctx, r.stderr, "etcd and kube-apiserver to start", bound, 100*time.Millisecond, func(context.Context) (bool, string, error) {
		r.recordChildren()
		select {
		case err := <-started:
			r.recordChildren()
			if err != nil {
				return false, "", fmt.Errorf("%w\n%s", err, r.logTails("etcd", "kube-apiserver"))
			}
			return true, "", nil
		default:
		}
		if l := lastLine(r.logPath("kube-apiserver")); l != "" {
			return false, "kube-apiserver.log: " + l, nil
		}
		if l := lastLine(r.logPath("etcd")); l != "" {
			return false, "etcd.log: " + l, nil
		}
		return false, "", nil
	})
	if err != nil {
		// Kill what started, so that Start returns, then let it clean up.
		r.recordChildren()
		_, _ = stopInOrder(r.stderr, r.records.live(), 5*time.Second)
		select {
		case <-started: //nolint:errcheck // the wait's error says more
		case <-time.After(15 * time.Second):
		}
		_ = cp.plane.Stop()
		cp.closeLogs()
		return nil, err
	}
	admin, err := cp.plane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, &rest.Config{QPS: 100, Burst: 200})
	if err != nil {
		_ = cp.stop()
		return nil, fmt.Errorf("adding the admin user: %w", err)
	}
	cp.cfg = admin.Config()
	cp.saKeyFile = filepath.Join(api.CertDir, "sa-signer.key")
	cp.caFile = filepath.Join(api.CertDir, "serving-ca.crt")
	if err := os.WriteFile(cp.caFile, api.CA, 0o600); err != nil {
		_ = cp.stop()
		return nil, fmt.Errorf("writing the API server's CA for kube-controller-manager: %w", err)
	}
	return cp, nil
}

// stop stops kube-apiserver, then etcd (SIGTERM, SIGKILL after 10s each).
func (cp *controlPlane) stop() error {
	err := cp.plane.Stop()
	cp.closeLogs()
	if err != nil {
		return fmt.Errorf("stopping etcd and kube-apiserver: %w", err)
	}
	return nil
}

func (cp *controlPlane) closeLogs() {
	for _, f := range cp.logs {
		_ = f.Close()
	}
}

// kubeconfig writes <dataDir>/<name> for a user of group system:masters and
// returns its path.
func (cp *controlPlane) kubeconfig(dataDir, name, user string) (string, error) {
	u, err := cp.plane.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("adding the user %s: %w", user, err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("building the kubeconfig of the user %s: %w", user, err)
	}
	path := filepath.Join(dataDir, name)
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		return "", fmt.Errorf("writing the kubeconfig of the user %s: %w", user, err)
	}
	return path, nil
}

// recordChildren records the control-plane processes this one started so
// far; a failure to write is reported once.
func (r *run) recordChildren() {
	if err := r.records.add(childrenOf(os.Getpid())...); err != nil && !r.recordErrSaid {
		r.recordErrSaid = true
		fmt.Fprintf(r.stderr, "portcullis dev: %v; a crash now would leave processes the next run cannot find\n", err)
	}
}

// logTails quotes the last lines of the named logs, for the error of a
// process that did not start.
func (r *run) logTails(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		if t := lastLines(r.logPath(n), 5); t != "" {
			fmt.Fprintf(&b, "  last lines of %s:\n%s\n", r.logPath(n), t)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// errExited reports a child that exited while it should run.
var errExited = errors.New("exited")
