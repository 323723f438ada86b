package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-dev/portcullis/audit"
	"github.com/portcullis-dev/portcullis/audit/policyreport"
	"github.com/portcullis-dev/portcullis/internal/manager"
)

// childResult is what the audit process reports, as one JSON line.
type childResult struct {
	Error string `json:"error,omitempty"`
	// StartupPeakRSS is the peak RSS before the first run, RSSBefore the
	// RSS just before it, in kB.
	StartupPeakRSS int64       `json:"startupPeakRSS"`
	RSSBefore      int64       `json:"rssBefore"`
	Runs           []runResult `json:"runs"`
}

type runResult struct {
	Duration        time.Duration  `json:"duration"`
	PeakRSS         int64          `json:"peakRSS"` // kB, during the run
	Kinds           int            `json:"kinds"`
	ObjectsListed   int            `json:"objectsListed"`
	ObjectsReviewed int            `json:"objectsReviewed"`
	Violations      int            `json:"violations"`
	ByAction        map[string]int `json:"byAction"`
	StatusWrites    int            `json:"statusWrites"`
	ListErrors      int            `json:"listErrors"`
	ReviewErrors    int            `json:"reviewErrors"`
	// Reports are what the run did with reports, with -reports.
	Reports       *policyreport.Stats `json:"reports,omitempty"`
	ReportSpilled int64               `json:"reportSpilled"`
	// CPU is the CPU time the run cost the audit process, the API server
	// and etcd.
	CPU cpuUse `json:"cpu"`
}

// runChild runs the manager, as `portcullis manager` would, with the audit
// added by audit.Setup's building blocks; the runs are started by the
// parent rather than by the interval, so that they are timed alone.
func runChild(ctx context.Context, c config) error {
	var w = io.Discard
	if os.Getenv("BENCH_AUDIT_LOG") != "" {
		w = os.Stderr
	}
	logger := zap.New(zap.WriteTo(w))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	res := childResult{}
	err := child1(ctx, c, &res)
	if err != nil {
		res.Error = err.Error()
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	return err
}

func child1(ctx context.Context, c config, res *childResult) error {
	cfg, err := restConfig(c.kubeconfig)
	if err != nil {
		return err
	}
	opts := manager.NewOptions()
	// The audit is added here by hand; the manager's own audit and webhook
	// stay off.
	opts.Audit.Interval = 0
	opts.Webhook.Enabled = false
	opts.Webhook.Mutation = false
	// Generated ValidatingAdmissionPolicies would refuse the objects.
	opts.VAP.CreatePolicies, opts.VAP.CreateBindings = false, false
	opts.PodID = benchPodID
	opts.MetricsBindAddress = "0"
	opts.HealthProbeBindAddress = "0"
	if err := opts.Complete(); err != nil {
		return err
	}
	m, err := manager.New(cfg, opts)
	if err != nil {
		return err
	}
	aopts := audit.NewOptions()
	aopts.Interval = 0
	aopts.ChunkSize = c.chunk
	aopts.Workers = c.workers
	if c.reports {
		aopts.Reports = audit.ReportsPolicyReport
		aopts.ReportsPass = c.reportsPass
	}
	a, err := audit.New(m.Manager().GetConfig(), m.Engine(), aopts, ctrl.Log.WithName("audit"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()

	// Wait for the parent's go: it has created the constraints and seen
	// them enforced by this process.
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || strings.TrimSpace(in.Text()) != "run" {
		return fmt.Errorf("no run command on stdin")
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
		return m.Ready() == nil, nil
	})
	if err != nil {
		return fmt.Errorf("the manager did not become ready: %w", m.Ready())
	}
	res.StartupPeakRSS, res.RSSBefore = procStatus("VmHWM"), procStatus("VmRSS")
	meter, err := newCPUMeter(cfg.Host)
	if err != nil {
		return fmt.Errorf("finding the control plane's processes: %w", err)
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for range c.runs {
		resetPeakRSS()
		before, err := meter.read()
		if err != nil {
			return err
		}
		rep, err := a.RunOnce(ctx)
		if err != nil {
			return fmt.Errorf("audit run: %w", err)
		}
		after, err := meter.read()
		if err != nil {
			return err
		}
		run := runResult{
			Duration: rep.Duration(), PeakRSS: procStatus("VmHWM"), Kinds: len(rep.Resources),
			ObjectsListed: rep.ObjectsListed, ObjectsReviewed: rep.ObjectsReviewed, Violations: rep.Violations,
			ByAction: rep.ViolationsByAction, StatusWrites: rep.StatusWrites, ListErrors: rep.ListErrors, ReviewErrors: rep.ReviewErrors,
			CPU: after.sub(before),
		}
		if c.reports {
			run.Reports, run.ReportSpilled = &rep.Reports, rep.ReportSpilled
		}
		res.Runs = append(res.Runs, run)
		if c.memProfile != "" {
			if err := writeHeapProfile(fmt.Sprintf("%s.%d", c.memProfile, len(res.Runs))); err != nil {
				return err
			}
		}
	}
	cancel()
	return <-done
}

// writeHeapProfile writes what the heap holds after a collection.
func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing the heap profile: %w", err)
	}
	return f.Close()
}

// procStatus reads a "kB" field of /proc/self/status.
func procStatus(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return -1
}

// resetPeakRSS resets VmHWM to the current RSS (Linux: clear_refs 5),
// after returning the heap's free pages to the system: otherwise the pages
// a run freed but Go kept would count in the next run's peak.
func resetPeakRSS() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}
