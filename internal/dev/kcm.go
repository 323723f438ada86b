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
	*child
	log *os.File
}

// child is a process a run started, reaped by a goroutine of its own.
type child struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when it exits
	err    error         // its Wait error, once exited is closed
}

// startControllerManager starts kube-controller-manager with Controllers,
// as a system:masters user, and waits at most bound until its /healthz
// answers.
func (r *run) startControllerManager(ctx context.Context, cp *controlPlane, bound time.Duration) (*controllerManager, error) {
	kubeconfig, err := cp.kubeconfig(r.dataDir, kcmKubeconfig, "system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, fmt.Errorf("choosing kube-controller-manager's port: %w", err)
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
		kcmKubeconfigArg+kubeconfig, // ownerFlag
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
	c, err := r.startRecorded("kube-controller-manager", cmd)
	if err != nil {
		log.Close()
		return nil, err
	}
	cm := &controllerManager{child: c, log: log}

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

// stop stops kube-controller-manager and closes its log.
func (cm *controllerManager) stop() error {
	defer cm.log.Close()
	return cm.child.stop()
}

// startRecorded starts cmd, reaps it whenever it exits, and records it
// as name; one that cannot be recorded is stopped.
func (r *run) startRecorded(name string, cmd *exec.Cmd) (*child, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, exited: make(chan struct{})}
	// Waited for before anything can fail, so that it is always reaped.
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	if p, ok := identify(name, cmd.Process.Pid); ok {
		if err := r.records.add(p); err != nil {
			_ = c.stop()
			return nil, err
		}
	}
	return c, nil
}

// stop sends SIGTERM, then SIGKILL after 10s.
func (c *child) stop() error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = c.cmd.Process.Kill()
	select {
	case <-c.exited:
		return fmt.Errorf("%s did not stop within 10s of SIGTERM: killed", c.name)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (PID %d) did not stop, even killed", c.name, c.cmd.Process.Pid)
	}
}
