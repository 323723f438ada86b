package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestDev runs `portcullis dev` as a subprocess: it reaches ready, the
// commands it prints behave as printed, a second instance on the same data
// dir is refused, and SIGINT leaves no etcd or kube-apiserver behind.
func TestDev(t *testing.T) {
	assets, err := testenv.AssetsDir()
	if err != nil {
		if errors.Is(err, testenv.ErrNoAssets) && !testenv.InCI() {
			t.Skipf("Skipping TestDev: %v; run `make envtest-assets` to build kube-apiserver and etcd", err)
		}
		t.Fatalf("control-plane binaries: %v", err)
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		if !testenv.InCI() {
			t.Skip("Skipping TestDev: kubectl not on PATH")
		}
		t.Fatal("kubectl not on PATH")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}

	bin := testenv.BuildPortcullis(t, t.TempDir())

	dataDir := t.TempDir()
	readyFile := filepath.Join(dataDir, "ready")
	env := append(os.Environ(), "KUBEBUILDER_ASSETS="+assets)
	var stdout, stderr testenv.Buffer
	cmd := exec.Command(bin, "dev", "--data-dir", dataDir, "--ready-file", readyFile)
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited //nolint:errcheck // killed: the exit error says only that
			for _, pid := range devChildren(dataDir) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("portcullis dev stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			if log, err := os.ReadFile(filepath.Join(dataDir, "portcullis.log")); err == nil && len(log) > 0 {
				if len(log) > 4000 {
					log = log[len(log)-4000:]
				}
				t.Logf("tail of portcullis.log:\n%s", log)
			}
		}
	})

	deadline := time.After(60 * time.Second)
wait:
	for {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("portcullis dev exited before ready: %v", err)
		case <-deadline:
			t.Fatal("portcullis dev not ready within 60s")
		case <-time.After(200 * time.Millisecond):
			if _, err := os.Stat(readyFile); err == nil {
				break wait
			}
		}
	}
	t.Logf("portcullis dev ready in %s", time.Since(begin).Round(100*time.Millisecond))

	out := stdout.String()
	if n := strings.Count(out, devReadyLine+"\n"); n != 1 {
		t.Errorf("stdout has %q %d times, want once", devReadyLine, n)
	}
	kubeconfig := filepath.Join(dataDir, "kubeconfig")
	var refused, admitted, get string
	for line := range strings.SplitSeq(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "export KUBECONFIG="):
			if got := strings.TrimPrefix(line, "export KUBECONFIG="); got != kubeconfig {
				t.Errorf("printed KUBECONFIG %s, want %s", got, kubeconfig)
			}
		case strings.HasPrefix(line, "kubectl create namespace") && strings.Contains(line, "kubectl apply"):
			admitted = line
		case strings.HasPrefix(line, "kubectl create namespace"):
			refused = line
		case line == "kubectl get constraints":
			get = line
		}
	}
	if refused == "" || admitted == "" || get == "" {
		t.Fatalf("the try-this block lacks a command (refused %q, admitted %q, get %q):\n%s", refused, admitted, get, out)
	}
	// kubectl's discovery cache is keyed by host and port: another test's
	// API server on the same port would leave it kinds this one lacks.
	cacheDir := t.TempDir()
	kubectl := func(line string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", line)
		c.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "KUBECACHEDIR="+cacheDir)
		b, err := c.CombinedOutput()
		return string(b), err
	}
	if got, err := kubectl(refused); err == nil || !strings.Contains(got, "denied") {
		t.Errorf("%s: want refused by the webhook, got err %v:\n%s", refused, err, got)
	}
	if got, err := kubectl(admitted); err != nil || !strings.Contains(got, "created") {
		t.Errorf("%s: want created, got err %v:\n%s", admitted, err, got)
	}
	if got, err := kubectl(get); err != nil || !strings.Contains(got, "namespace-must-have-test") || !strings.Contains(got, "namespace-owner-and-test") {
		t.Errorf("%s: want the sample constraints, got err %v:\n%s", get, err, got)
	}

	// A second instance on the same data dir says so and exits non-zero.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, bin, "dev", "--data-dir", dataDir)
	second.Dir = root
	second.Env = env
	b, err := second.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(string(b), "already running") {
		t.Errorf("second portcullis dev: want a non-zero exit saying one is running, got %v:\n%s", err, b)
	}
	if _, err := os.Stat(readyFile); err != nil {
		t.Errorf("the second instance touched the first one's ready file: %v", err)
	}

	children := devChildren(dataDir)
	if len(children) < 2 {
		t.Errorf("want etcd and kube-apiserver running with %s, found PIDs %v", dataDir, children)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("portcullis dev after SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("portcullis dev still running 30s after SIGINT")
	}
	for _, pid := range children {
		if devAlive(pid) {
			t.Errorf("PID %d survived portcullis dev", pid)
		}
	}
	if left := devChildren(dataDir); len(left) > 0 {
		t.Errorf("processes still using %s: %v", dataDir, left)
	}
	if _, err := os.Stat(readyFile); err == nil {
		t.Error("the ready file is still there after stop")
	}
}

// devChildren lists the live processes whose command line mentions dir
// (etcd's --data-dir, kube-apiserver's --cert-dir).
func devChildren(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.Contains(string(b), dir+"/") {
			continue
		}
		if base := filepath.Base(args[0]); (base == "etcd" || base == "kube-apiserver") && devAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// devAlive reports whether pid exists and is not a zombie.
func devAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
