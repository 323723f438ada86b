package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// Bounds of the subprocess tests of `portcullis dev`. They are generous:
// the test machines are shared. None is a speed assertion.
const (
	devReadyBound = 3 * time.Minute
	devStopBound  = 60 * time.Second
	devLineBound  = 2 * time.Minute
)

// devHarness runs `portcullis dev` as a real process: the binary, the
// repository root it runs from, and its environment.
type devHarness struct {
	bin, root string
	env       []string
}

// newDevHarness builds portcullis, or skips the test when the control
// plane (kube-controller-manager included) or kubectl is missing, outside
// CI.
func newDevHarness(t *testing.T) *devHarness {
	t.Helper()
	assets, err := testenv.DevAssetsDir()
	if err != nil {
		if errors.Is(err, testenv.ErrNoAssets) && !testenv.InCI() {
			t.Skipf("Skipping: %v; run `make envtest-assets` to build etcd, kube-apiserver and kube-controller-manager", err)
		}
		t.Fatalf("control-plane binaries: %v", err)
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		if !testenv.InCI() {
			t.Skip("Skipping: kubectl not on PATH")
		}
		t.Fatal("kubectl not on PATH")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return &devHarness{
		bin:  testenv.BuildPortcullis(t, t.TempDir()),
		root: root,
		env:  append(os.Environ(), "KUBEBUILDER_ASSETS="+assets),
	}
}

// devProc is one `portcullis dev` process.
type devProc struct {
	t                  *testing.T
	name               string
	dataDir, readyFile string
	cmd                *exec.Cmd
	stdout, stderr     testenv.Buffer
	exited             chan struct{}
	err                error // Wait's, once exited is closed
}

// start starts `portcullis dev --data-dir dataDir --ready-file ... args`.
// At the end of the test it is killed if still running, with whatever
// uses dataDir, and its output is logged if the test failed.
func (h *devHarness) start(t *testing.T, name, dataDir string, args ...string) *devProc {
	t.Helper()
	p := &devProc{t: t, name: name, dataDir: dataDir, readyFile: filepath.Join(t.TempDir(), "ready"), exited: make(chan struct{})}
	p.cmd = exec.Command(h.bin, append([]string{"dev", "--data-dir", dataDir, "--ready-file", p.readyFile}, args...)...)
	p.cmd.Dir = h.root
	p.cmd.Env = h.env
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if !p.hasExited() {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		for _, pid := range devChildren(dataDir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			p.logOutput()
		}
	})
	return p
}

func (p *devProc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *devProc) logOutput() {
	p.t.Logf("%s (PID %d) stdout:\n%s\nstderr:\n%s", p.name, p.cmd.Process.Pid, p.stdout.String(), p.stderr.String())
	for _, l := range []string{"portcullis", "kube-controller-manager", "kube-apiserver", "etcd"} {
		if b, err := os.ReadFile(filepath.Join(p.dataDir, l+".log")); err == nil && len(b) > 0 {
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			p.t.Logf("%s: tail of %s.log:\n%s", p.name, l, b)
		}
	}
}

// waitReady waits until the ready file is there; it fails the test if the
// process exits first or bound passes.
func (p *devProc) waitReady(bound time.Duration) {
	p.t.Helper()
	begin := time.Now()
	deadline := time.After(bound)
	for {
		if _, err := os.Stat(p.readyFile); err == nil {
			p.t.Logf("%s ready in %s", p.name, time.Since(begin).Round(100*time.Millisecond))
			return
		}
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited before ready: %v", p.name, p.err)
		case <-deadline:
			p.t.Fatalf("%s not ready within %s", p.name, bound)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitStderr waits until stderr holds s; false if the process exited or
// bound passed first.
func (p *devProc) waitStderr(s string, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	for !strings.Contains(p.stderr.String(), s) {
		if p.hasExited() || time.Now().After(deadline) {
			return strings.Contains(p.stderr.String(), s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// signalAndWait sends sig and waits at most bound for the process to exit;
// it returns the exit code (-1 if it did not exit).
func (p *devProc) signalAndWait(sig syscall.Signal, bound time.Duration) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !p.hasExited() {
		p.t.Fatalf("sending %s to %s: %v", sig, p.name, err)
	}
	return p.waitExit(bound)
}

// waitExit waits at most bound for the process to exit and returns its
// exit code, -1 (and a test error) if it is still running.
func (p *devProc) waitExit(bound time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(bound):
		p.t.Errorf("%s still running %s later", p.name, bound)
		return -1
	}
	if ee, ok := errors.AsType[*exec.ExitError](p.err); ok {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Errorf("%s: %v", p.name, p.err)
		return -1
	}
	return 0
}

// kubectl runs a kubectl command line (bash, pipefail) against dataDir's
// cluster, with a discovery cache of the test's own: another test's API
// server on a reused port would leave it kinds this one lacks.
func kubectl(t *testing.T, dataDir, line string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", line)
	c.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(dataDir, "kubeconfig"), "KUBECACHEDIR="+filepath.Join(dataDir, "kube-cache"))
	b, err := c.CombinedOutput()
	return string(b), err
}

// mustKubectl runs kubectl and fails the test if it fails.
func mustKubectl(t *testing.T, dataDir, line string) string {
	t.Helper()
	out, err := kubectl(t, dataDir, line)
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return out
}

// eventually runs a kubectl command line until ok accepts its output, at
// most bound; the failure names the command, what was wanted and the last
// output.
func eventually(t *testing.T, dataDir, line, want string, bound time.Duration, ok func(out string, err error) bool) string {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		out, err := kubectl(t, dataDir, line)
		if ok(out, err) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %s within %s; last exit %v, output:\n%s", line, want, bound, err, out)
		}
		time.Sleep(time.Second)
	}
}

// devChildren lists the live processes of a dev run of dir: etcd,
// kube-apiserver and kube-controller-manager with dir on their command
// line.
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
		if base := filepath.Base(args[0]); slices.Contains([]string{"etcd", "kube-apiserver", "kube-controller-manager"}, base) && devAlive(pid) {
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

// assertNothingLeft fails the test if a process of a dev run of dir still
// runs, or the run left its PIDs recorded or its lock held.
func assertNothingLeft(t *testing.T, dir, when string) {
	t.Helper()
	if left := devChildren(dir); len(left) > 0 {
		t.Errorf("%s: processes of the dev run still running: PIDs %v", when, left)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "processes")); err == nil && strings.TrimSpace(string(b)) != "" {
		t.Errorf("%s: %s/processes still lists:\n%s", when, dir, b)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "lock")); err == nil && strings.TrimSpace(string(b)) != "" {
		t.Errorf("%s: %s/lock still names a holder: %s", when, dir, b)
	}
}

// sortedLines splits output into its sorted non-empty lines.
func sortedLines(out string) []string {
	var l []string
	for s := range strings.SplitSeq(out, "\n") {
		if s = strings.TrimSpace(s); s != "" {
			l = append(l, s)
		}
	}
	slices.Sort(l)
	return l
}
