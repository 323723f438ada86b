package dev

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startChild starts a real process for the tests of stopping, waits until
// it prints its first line, and makes sure it is gone when the test ends.
func startChild(t *testing.T, script string) (*exec.Cmd, proc) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("the child printed nothing: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	p, ok := identify("child", cmd.Process.Pid)
	if !ok {
		t.Fatalf("PID %d not found in /proc", cmd.Process.Pid)
	}
	return cmd, p
}

func TestProcIdentity(t *testing.T) {
	_, p := startChild(t, "echo started; exec sleep 60")
	if !p.alive() {
		t.Fatalf("%s not alive", p)
	}
	// Another start time is another process that reused the PID.
	if reused := (proc{Name: p.Name, PID: p.PID, Start: p.Start + 1, Boot: p.Boot}); reused.alive() {
		t.Error("a record with another start time counts as alive")
	}
	if other := (proc{Name: p.Name, PID: p.PID, Start: p.Start, Boot: "another-boot"}); other.alive() {
		t.Error("a record of another boot counts as alive")
	}
	got, ok := parseProc(p.line())
	if !ok || got != p {
		t.Errorf("parseProc(line) = %+v, %t; want %+v", got, ok, p)
	}
	for _, bad := range []string{"", "etcd 1 2", "etcd x 2 b", "etcd 1 x b", "etcd -1 2 b", "etcd 1 2 b extra"} {
		if _, ok := parseProc(bad); ok {
			t.Errorf("parseProc(%q) accepted", bad)
		}
	}
}

func TestStopProcs(t *testing.T) {
	_, polite := startChild(t, "echo started; exec sleep 60")
	// Ignores SIGTERM (the trap is set before "started" is printed): needs
	// SIGKILL.
	_, stubborn := startChild(t, "trap '' TERM; echo started; while :; do sleep 0.1; done")
	var out bytes.Buffer
	saved := progressAfter
	progressAfter = 100 * time.Millisecond
	defer func() { progressAfter = saved }()
	res, err := stopProcs(&out, []proc{polite, stubborn}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if polite.alive() || stubborn.alive() {
		t.Fatalf("still alive: %t %t", polite.alive(), stubborn.alive())
	}
	if len(res.killed) != 1 || res.killed[0] != stubborn || len(res.left) != 0 {
		t.Errorf("got killed %v, left %v; want only %s killed", res.killed, res.left, stubborn)
	}
	if !strings.Contains(out.String(), "still waiting for child (PID ") || !strings.Contains(out.String(), "to stop after SIGTERM") {
		t.Errorf("no progress line while waiting:\n%s", out.String())
	}
}

func TestRecords(t *testing.T) {
	dir := t.TempDir()
	r := newRecords(dir)
	_, p := startChild(t, "echo started; exec sleep 60")
	gone := proc{Name: "etcd", PID: p.PID, Start: p.Start + 1, Boot: p.Boot}
	if err := r.add(p, gone, p); err != nil {
		t.Fatal(err)
	}
	got, err := newRecords(dir).load()
	if err != nil || len(got) != 2 {
		t.Fatalf("load: %v %v, want two records", got, err)
	}
	if live := r.live(); len(live) != 1 || live[0] != p {
		t.Errorf("live: %v, want %v", live, p)
	}
	if err := r.clear(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleared records still there: %v", err)
	}
}

func TestChildrenOf(t *testing.T) {
	// A child named like a control-plane binary is found; others are not.
	dir := t.TempDir()
	if err := os.Symlink("/bin/sleep", dir+"/etcd"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dir+"/etcd", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	_, other := startChild(t, "echo started; exec sleep 60")
	var found, foundOther bool
	for _, c := range childrenOf(os.Getpid()) {
		found = found || c.PID == cmd.Process.Pid
		foundOther = foundOther || c.PID == other.PID
	}
	if !found || foundOther {
		t.Errorf("childrenOf: found etcd %t (want true), found sleep %t (want false)", found, foundOther)
	}
}

func TestWaitFor(t *testing.T) {
	savedAfter, savedEvery := progressAfter, progressEvery
	progressAfter, progressEvery = 50*time.Millisecond, 50*time.Millisecond
	defer func() { progressAfter, progressEvery = savedAfter, savedEvery }()

	var out bytes.Buffer
	never := func(context.Context) (bool, string, error) { return false, "the reason", nil }
	err := waitFor(context.Background(), &out, "the thing", 300*time.Millisecond, 10*time.Millisecond, never)
	if err == nil || err.Error() != "the thing: not done after 300ms: the reason" {
		t.Errorf("bound: got %v", err)
	}
	if !strings.Contains(out.String(), "portcullis dev: still waiting for the thing (") || !strings.Contains(out.String(), "at most 300ms): the reason") {
		t.Errorf("no progress line:\n%s", out.String())
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.Join(ErrInterrupted))
	err = waitFor(ctx, &out, "the thing", time.Minute, 10*time.Millisecond, never)
	if !errors.Is(err, ErrInterrupted) {
		t.Errorf("signal: got %v, want ErrInterrupted", err)
	}

	boom := errors.New("boom")
	err = waitFor(context.Background(), &out, "the thing", time.Minute, 10*time.Millisecond, func(context.Context) (bool, string, error) { return false, "", boom })
	if !errors.Is(err, boom) {
		t.Errorf("check error: got %v", err)
	}
}

func TestLastLine(t *testing.T) {
	p := t.TempDir() + "/x.log"
	if got := lastLine(p); got != "" {
		t.Errorf("missing file: %q", got)
	}
	if err := os.WriteFile(p, []byte("one\ntwo\n\n  \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := lastLine(p); got != "two" {
		t.Errorf("lastLine = %q, want two", got)
	}
	if got := lastLines(p, 5); got != "    one\n    two" {
		t.Errorf("lastLines = %q", got)
	}
}

func TestSigName(t *testing.T) {
	for sig, want := range map[os.Signal]string{os.Interrupt: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGHUP: "SIGHUP"} {
		if got := sigName(sig); got != want {
			t.Errorf("sigName(%v) = %q, want %q", sig, got, want)
		}
	}
}

// TestUsingDir: only a child running with the very flag a run of the data
// dir passes counts as that run's; a process whose paths merely lie under
// the data dir (envtest's under /tmp, another data dir inside this one) is
// not stopped.
func TestUsingDir(t *testing.T) {
	bin := t.TempDir()
	dataDir := filepath.Join(t.TempDir(), "dev")
	for _, name := range childNames {
		// bash under the child's name: its arguments after the script
		// are its command line, untouched.
		if err := os.Symlink("/bin/bash", filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	start := func(name, arg string) int {
		cmd := exec.Command(filepath.Join(bin, name), "-c", "sleep 60; :", arg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return cmd.Process.Pid
	}
	owned := map[int]string{}
	for _, name := range childNames {
		owned[start(name, ownerFlag(name, dataDir))] = name
	}
	others := map[int]string{
		start("etcd", "--data-dir="+filepath.Join(dataDir, "k8s_test_framework-1")):            "etcd of a dir under the data dir",
		start("etcd", "--data-dir="+dataDir):                                                   "etcd of the data dir itself",
		start("kube-apiserver", "--cert-dir="+filepath.Join(dataDir, "other", apiserverDir)):   "kube-apiserver of a data dir inside it",
		start("kube-controller-manager", "--kubeconfig="+filepath.Join(dataDir, "kubeconfig")): "kube-controller-manager with another kubeconfig",
		start("etcd", "--cert-dir="+filepath.Join(dataDir, apiserverDir)):                      "etcd with kube-apiserver's flag",
	}
	var found map[int]bool
	for range 50 { // until every child has exec'd
		found = map[int]bool{}
		for _, p := range usingDir(dataDir) {
			found[p.PID] = true
		}
		if len(found) >= len(owned) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for pid, name := range owned {
		if !found[pid] {
			t.Errorf("%s (PID %d) run with %s not found", name, pid, ownerFlag(name, dataDir))
		}
	}
	for pid, what := range others {
		if found[pid] {
			t.Errorf("%s (PID %d) taken for the data dir's", what, pid)
		}
	}
}

// TestStartRecordedUnrecorded: a child whose PID cannot be recorded is
// stopped and reaped, not left a zombie.
func TestStartRecordedUnrecorded(t *testing.T) {
	r := &run{records: newRecords(filepath.Join(t.TempDir(), "missing"))}
	cmd := exec.Command("sleep", "60")
	if _, err := r.startRecorded("sleep", cmd); err == nil {
		t.Fatal("recording into a missing directory succeeded")
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(time.Minute)
	for {
		st, ok := readStat(pid)
		if !ok {
			return // stopped and reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("PID %d still there (state %c) a minute after it could not be recorded", pid, st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
