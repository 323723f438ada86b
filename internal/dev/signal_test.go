package dev

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv"
)

// TestSecondSignal runs dev in this process, held once etcd and
// kube-apiserver run (HoldControlPlane), and sends it SIGINT twice: the
// first stops start-up, the second, sent while it stops, kills at once
// what the run recorded (the records the handler reads are made before it
// starts listening, review finding 5).
func TestSecondSignal(t *testing.T) {
	assets, err := testenv.DevAssetsDir()
	if err != nil {
		if errors.Is(err, testenv.ErrNoAssets) && !testenv.InCI() {
			t.Skipf("Skipping: %v; run `make envtest-assets`", err)
		}
		t.Fatal(err)
	}
	// Once Run stops listening, a late SIGINT must not end the test binary.
	keep := make(chan os.Signal, 4)
	signal.Notify(keep, os.Interrupt)
	defer signal.Stop(keep)

	mopts, err := ManagerOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	var stderr testenv.Buffer
	o := Options{
		DataDir: dataDir, AssetsDir: assets, Timeout: 5 * time.Minute, NoSamples: true,
		Manager: mopts, Stdout: io.Discard, Stderr: &stderr, HoldAt: HoldControlPlane,
	}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), o) }()
	t.Cleanup(func() {
		for _, p := range usingDir(dataDir) {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	})
	waitLine := func(line string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for !strings.Contains(stderr.String(), line) {
			select {
			case err := <-done:
				t.Fatalf("Run returned %v before %q:\n%s", err, line, stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q within 3 minutes:\n%s", line, stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLine("portcullis dev: holding at " + HoldControlPlane)
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitLine("portcullis dev: SIGINT: stopping everything it started")
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitLine("portcullis dev: SIGINT again: killing ")
	select {
	case err := <-done:
		if !errors.Is(err, ErrInterrupted) {
			t.Errorf("Run returned %v, want it interrupted", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("Run still running a minute after the second SIGINT:\n%s", stderr.String())
	}
	_, line, _ := strings.Cut(stderr.String(), "SIGINT again")
	line, _, _ = strings.Cut(line, "\n")
	if !strings.Contains(line, "etcd (PID ") || !strings.Contains(line, "kube-apiserver (PID ") {
		t.Errorf("the second SIGINT killed %q, want etcd and kube-apiserver", line)
	}
	if left := usingDir(dataDir); len(left) > 0 {
		t.Errorf("%s left running", listProcs(left))
	}
}
