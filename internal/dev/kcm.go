package dev

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis-dev/portcullis/internal/loopback"
)

// Controllers are the kube-controller-manager controllers `portcullis dev`
// runs: those that need no node, no cloud and no storage. Namespaces are
// emptied and deleted, owned objects collected, every namespace gets its
// ServiceAccount default, and workloads get their ReplicaSets, Pods and
// Jobs (Pods stay Pending: there is no kubelet). Not the publisher of
// ConfigMap kube-root-ca.crt: only a kubelet's projected token volumes use
// it, and it would put a ConfigMap in every namespace for the audit to
// find.
var Controllers = []string{
	"namespace-controller",
	"garbage-collector-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"clusterrole-aggregation-controller",
	"deployment-controller",
	"replicaset-controller",
	"replicationcontroller-controller",
	"statefulset-controller",
	"job-controller",
	"cronjob-controller",
	"ttl-after-finished-controller",
	"disruption-controller",
	"endpoints-controller",
	"endpointslice-controller",
	"endpointslice-mirroring-controller",
	"resourcequota-controller",
	"ephemeral-volume-controller",
	"persistentvolume-protection-controller",
	"persistentvolumeclaim-protection-controller",
	"validatingadmissionpolicy-status-controller",
}

// controllerManager is the running kube-controller-manager.
type controllerManager struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when it exits
	err    error         // its Wait error, once exited is closed
	log    *os.File
}

// startControllerManager starts kube-controller-manager with Controllers,
// as a system:masters user, and waits at most bound until its /healthz
// answers.
func (r *run) startControllerManager(ctx context.Context, cp *controlPlane, bound time.Duration) (*controllerManager, error) {
	kubeconfig, err := cp.kubeconfig(r.dataDir, "controller-manager.kubeconfig", "system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(r.dataDir, "controller-manager")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	log, err := os.Create(r.logPath("kube-controller-manager"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(r.assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--authentication-kubeconfig="+kubeconfig,
		"--authorization-kubeconfig="+kubeconfig,
		// Only /healthz is asked for; no front proxy to trust.
		"--authentication-skip-lookup",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+certDir,
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file="+cp.saKeyFile,
		"--root-ca-file="+cp.caFile,
		"--controllers="+strings.Join(Controllers, ","),
	)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: Ctrl-C reaches this process only, which stops
	// everything in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	cm := &controllerManager{cmd: cmd, exited: make(chan struct{}), log: log}
	if p, ok := identify("kube-controller-manager", cmd.Process.Pid); ok {
		if err := r.records.add(p); err != nil {
			_ = cm.stop()
			return nil, err
		}
	}
	go func() {
		cm.err = cmd.Wait()
		close(cm.exited)
	}()

	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // its own self-signed certificate on loopback, for /healthz only
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	err = waitFor(ctx, r.stderr, "kube-controller-manager to serve "+url, bound, 200*time.Millisecond, func(ctx context.Context) (bool, string, error) {
		select {
		case <-cm.exited:
			why := cm.err
			if why == nil {
				why = errors.New("exit status 0")
			}
			return false, "", fmt.Errorf("kube-controller-manager %w (%w)\n%s", errExited, why, r.logTails("kube-controller-manager"))
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
		if err != nil {
			return false, "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, lastLogLine(r.logPath("kube-controller-manager"), err.Error()), nil
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return true, "", nil
		}
		return false, fmt.Sprintf("/healthz answers %s", resp.Status), nil
	})
	if err != nil {
		_ = cm.stop()
		return nil, err
	}
	return cm, nil
}

// lastLogLine is the last line of a log as a reason, else fallback.
func lastLogLine(path, fallback string) string {
	if l := lastLine(path); l != "" {
		return filepath.Base(path) + ": " + l
	}
	return fallback
}

// stop sends SIGTERM, then SIGKILL after 10s.
func (cm *controllerManager) stop() error {
	defer cm.log.Close()
	select {
	case <-cm.exited:
		return nil
	default:
	}
	_ = cm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-cm.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = cm.cmd.Process.Kill()
	select {
	case <-cm.exited:
		return fmt.Errorf("kube-controller-manager did not stop within 10s of SIGTERM: killed")
	case <-time.After(5 * time.Second):
		return fmt.Errorf("kube-controller-manager (PID %d) did not stop, even killed", cm.cmd.Process.Pid)
	}
}
