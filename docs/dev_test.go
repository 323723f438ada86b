package docs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// devProcess is the one `portcullis dev` the cluster commands run against.
type devProcess struct {
	dataDir, readyFile string
	cmd                *exec.Cmd
	exited             chan error
	stdout, stderr     *testenv.Buffer
}

// startDev starts `portcullis dev --data-dir <view>/.dev`, after building
// view: a symlink to every entry of root but .dev and .git. It returns a
// reason to skip the cluster commands when the control plane or kubectl is
// missing (a failure in CI instead).
func startDev(t *testing.T, root, view, binDir string) (*devProcess, string) {
	t.Helper()
	assets, err := testenv.DevAssetsDir()
	if err != nil {
		if errors.Is(err, testenv.ErrNoAssets) && !testenv.InCI() {
			return nil, fmt.Sprintf("Skipping the cluster commands: %v; run `make envtest-assets` to build etcd, kube-apiserver and kube-controller-manager", err)
		}
		t.Fatalf("control-plane binaries: %v", err)
	}
	for _, tool := range []string{"kubectl", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if !testenv.InCI() {
				return nil, fmt.Sprintf("Skipping the cluster commands: %s not on PATH", tool)
			}
			t.Fatalf("%s not on PATH", tool)
		}
	}
	if err := os.MkdirAll(view, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == ".dev" || e.Name() == ".git" {
			continue
		}
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(view, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	d := &devProcess{
		dataDir: filepath.Join(view, ".dev"),
		exited:  make(chan error, 1),
		stdout:  &testenv.Buffer{},
		stderr:  &testenv.Buffer{},
	}
	d.readyFile = filepath.Join(d.dataDir, "ready")
	d.cmd = exec.Command(filepath.Join(binDir, "portcullis"), "dev", "--data-dir", d.dataDir, "--ready-file", d.readyFile)
	d.cmd.Dir = root
	d.cmd.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+assets)
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	return d, ""
}

func (d *devProcess) waitReady(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("portcullis dev exited before ready: %v\nstderr:\n%s", err, d.stderr.String())
		case <-deadline:
			return fmt.Errorf("portcullis dev not ready within %s\nstderr:\n%s", timeout, d.stderr.String())
		case <-time.After(200 * time.Millisecond):
			if _, err := os.Stat(d.readyFile); err == nil {
				return nil
			}
		}
	}
}

// metricsAddress is where the manager serves /metrics, from its log.
func (d *devProcess) metricsAddress(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dataDir, "portcullis.log"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(metricsLogRE).FindAllSubmatch(b, -1)
	if len(m) == 0 {
		t.Fatalf("no metrics address in portcullis.log")
	}
	return string(m[len(m)-1][1])
}

// stop interrupts portcullis dev, as Ctrl-C does, and makes sure etcd,
// kube-apiserver and kube-controller-manager went with it.
func (d *devProcess) stop(t *testing.T) {
	if t.Failed() {
		t.Logf("portcullis dev stdout:\n%s\nstderr:\n%s", d.stdout.String(), d.stderr.String())
		if log, err := os.ReadFile(filepath.Join(d.dataDir, "portcullis.log")); err == nil {
			if len(log) > 4000 {
				log = log[len(log)-4000:]
			}
			t.Logf("tail of portcullis.log:\n%s", log)
		}
	}
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-d.exited:
		if err != nil {
			t.Errorf("portcullis dev after SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("portcullis dev still running 30s after SIGINT; killing it")
		_ = d.cmd.Process.Kill()
		<-d.exited //nolint:errcheck // killed: the exit error says only that
	}
	for _, pid := range controlPlanePIDs(d.dataDir) {
		t.Errorf("PID %d (etcd, kube-apiserver or kube-controller-manager) survived portcullis dev; killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// controlPlanePIDs lists live etcd, kube-apiserver and
// kube-controller-manager processes whose command line mentions dir.
func controlPlanePIDs(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte(dir+"/")) {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if base := filepath.Base(args[0]); base != "etcd" && base != "kube-apiserver" && base != "kube-controller-manager" {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}
