package cli

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/dev"
)

// TestDevSignalDuringStartup stops `portcullis dev` with a signal (SIGTERM,
// SIGINT as Ctrl-C sends it, SIGHUP as a closed terminal does) in each step
// of its start-up, held there (dev.HoldEnv) so that the signal always lands
// mid-step: it exits at once (well within its bounds), says it was
// interrupted in that step, and leaves no process, no PID record and no
// lock holder. The next start then has nothing to recover.
func TestDevSignalDuringStartup(t *testing.T) {
	h := newDevHarness(t)
	dir := t.TempDir()
	steps := []struct {
		hold, doing, name string
		sig               syscall.Signal
	}{
		{dev.HoldControlPlane, "starting etcd and kube-apiserver", "SIGTERM", syscall.SIGTERM},
		// A closed terminal.
		{dev.HoldControllerManager, "starting kube-controller-manager", "SIGHUP", syscall.SIGHUP},
		{dev.HoldManager, "starting the manager", "SIGINT", syscall.SIGINT},
		{dev.HoldSamples, "applying the samples", "SIGTERM", syscall.SIGTERM},
	}
	for _, s := range steps {
		held := *h
		held.env = append(slices.Clone(h.env), dev.HoldEnv+"="+s.hold)
		p := held.start(t, "signaled at "+s.hold, dir, "--samples")
		line := "portcullis dev: holding at " + s.hold
		if !p.waitStderr(line, devLineBound) {
			t.Fatalf("%s: no %q on stderr within %s", p.name, line, devLineBound)
		}
		code := p.signalAndWait(s.sig, devStopBound)
		stderr := p.stderr.String()
		if want := "interrupted by " + s.name + " while " + s.doing; code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, want 1 and a message saying %q", p.name, code, want)
		}
		if strings.Contains(stderr, "portcullis dev: ready") {
			t.Errorf("%s: ready, though held at %s", p.name, s.hold)
		}
		if strings.Contains(stderr, "left running by") {
			t.Errorf("%s: the previous signaled run left processes behind", p.name)
		}
		assertNothingLeft(t, dir, p.name)
		if t.Failed() {
			p.logOutput()
			return
		}
	}

	// SIGKILL mid-start, then --stop: what the killed run left is stopped,
	// and said so, without starting anything. Without its PID records too
	// (as if it was killed before writing them): the processes are found
	// by the data dir on their command line.
	p := h.start(t, "killed at starting the manager", dir)
	if !p.waitStderr("portcullis dev: starting the manager", devLineBound) {
		t.Fatalf("%s: no line saying it starts the manager within %s", p.name, devLineBound)
	}
	p.signalAndWait(syscall.SIGKILL, devStopBound)
	left := devChildren(dir)
	if len(left) < 3 {
		t.Errorf("want etcd, kube-apiserver and kube-controller-manager left by SIGKILL, found PIDs %v", left)
	}
	if err := os.Remove(filepath.Join(dir, "processes")); err != nil {
		t.Fatal(err)
	}
	stop := h.start(t, "--stop", dir, "--stop")
	if code := stop.waitExit(devStopBound); code != 0 {
		t.Errorf("%s: exit %d, want 0", stop.name, code)
	}
	for _, pid := range left {
		if !strings.Contains(stop.stderr.String(), "(PID "+strconv.Itoa(pid)+")") {
			t.Errorf("%s: PID %d not named:\n%s", stop.name, pid, stop.stderr.String())
		}
	}
	if strings.Contains(stop.stderr.String(), "starting") {
		t.Errorf("%s started something:\n%s", stop.name, stop.stderr.String())
	}
	assertNothingLeft(t, dir, stop.name)
}

// TestDevRefusals covers what `portcullis dev` refuses before it starts
// anything: a data dir from a newer version, an unreadable state file, a
// port already taken, and bad manager flags. Each gets a clear message,
// a non-zero exit, and no process.
func TestDevRefusals(t *testing.T) {
	h := newDevHarness(t)

	newer := t.TempDir()
	writeState := func(dir, content string) {
		if err := os.WriteFile(filepath.Join(dir, "portcullis-dev.json"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeState(newer, `{"format": 99}`)
	garbled := t.TempDir()
	writeState(garbled, "not json")
	oldEtcd := t.TempDir()
	writeState(oldEtcd, `{"format": 2, "etcd": "v3.9.0"}`)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)

	for _, c := range []struct {
		name    string
		dir     string
		args    []string
		code    int
		want    []string
		wantNot string
	}{
		{"newer data dir", newer, nil, 1, []string{"has format 99, written by a newer portcullis dev", "make dev-clean"}, ""},
		{"garbled state", garbled, nil, 1, []string{filepath.Join(garbled, "portcullis-dev.json") + " is not a portcullis dev state file", "make dev-clean"}, ""},
		{"etcd data of a newer etcd", oldEtcd, nil, 1, []string{"was written by etcd v3.9.0", "cannot read", "make dev-clean"}, ""},
		{"port taken", t.TempDir(), []string{"--", "--port=" + port}, 1,
			[]string{"port 127.0.0.1:" + port + " (--port, after --) is already in use by", "(PID " + strconv.Itoa(os.Getpid()) + ")"}, "starting etcd"},
		{"unknown manager flag", t.TempDir(), []string{"--", "--no-such-flag"}, 2, []string{"manager flags after --", "no-such-flag"}, ""},
		{"flag dev sets", t.TempDir(), []string{"--", "--kubeconfig=/x"}, 2, []string{"--kubeconfig cannot be given to portcullis dev"}, ""},
		{"argument before --", t.TempDir(), []string{"stray"}, 2, []string{`unexpected argument "stray": manager flags go after --`}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := h.start(t, c.name, c.dir, c.args...)
			if code := p.waitExit(devStopBound); code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			stderr := p.stderr.String()
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if c.wantNot != "" && strings.Contains(stderr, c.wantNot) {
				t.Errorf("stderr has %q: it started before refusing:\n%s", c.wantNot, stderr)
			}
			assertNothingLeft(t, c.dir, c.name)
		})
	}
}
