// Command bench-audit measures one audit run (`make bench-audit`): it loads
// N objects (ConfigMaps, Pods, Deployments and Services over 50 namespaces)
// and the gatekeeper-library's templates, each with its first sample
// constraint, into an envtest control plane; runs the manager with the audit
// in a child process and reports the run's duration and the child's peak
// RSS; then checks every constraint's status.totalViolations against an
// offline review of the same objects by a fresh engine.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-dev/portcullis/internal/gklibrary"
)

type config struct {
	n           int
	namespaces  int
	library     string
	concurrency int
	runs        int
	chunk       int64
	workers     int
	verify      bool
	keep        bool
	cpuProfile  string
	memProfile  string
	reports     bool
	reportsPass bool

	child      bool
	kubeconfig string
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 10000, "objects to load: per namespace, 50% ConfigMaps, 25% Pods, 15% Deployments, 10% Services")
	flag.IntVar(&c.namespaces, "namespaces", 50, "namespaces to spread the objects over")
	flag.StringVar(&c.library, "library", "", "gatekeeper-library's library directory (default ../shared/gatekeeper-library/library beside the repository)")
	flag.IntVar(&c.concurrency, "load-concurrency", 16, "objects created in parallel")
	flag.IntVar(&c.runs, "runs", 2, "audit runs to time (the first writes every status, later ones only what changed)")
	flag.Int64Var(&c.chunk, "chunk", 500, "--audit-chunk-size")
	flag.IntVar(&c.workers, "workers", 0, "--audit-workers (0: GOMAXPROCS)")
	flag.BoolVar(&c.verify, "verify", true, "check each constraint's totalViolations against an offline review")
	flag.BoolVar(&c.keep, "keep", false, "leave the control plane running at the end until interrupted")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the audit runs to this file")
	flag.StringVar(&c.memProfile, "memprofile", "", "write a heap profile after each audit run to this file, suffixed with the run's number")
	flag.BoolVar(&c.reports, "reports", false, "write the results as PolicyReports (--audit-reports=policyreport), and check them against the statuses")
	flag.BoolVar(&c.reportsPass, "reports-pass", false, "with -reports, write pass results too (--audit-reports-pass)")
	flag.BoolVar(&c.child, "child", false, "internal: run the manager and the audit")
	flag.StringVar(&c.kubeconfig, "child-kubeconfig", "", "internal: the child's kubeconfig")
	flag.Parse()

	rest.SetDefaultWarningHandler(rest.NoWarnings{}) // deprecated kinds, listed on purpose
	if err := run(c); err != nil {
		fmt.Fprintf(os.Stderr, "bench-audit: %v\n", err)
		os.Exit(1)
	}
}

// run is the child or the parent, until it ends or a signal stops it.
func run(c config) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if c.child {
		return runChild(ctx, c)
	}
	return runParent(ctx, c)
}

func runParent(ctx context.Context, c config) error {
	policies, err := readLibrary(c.library)
	if err != nil {
		return err
	}
	fmt.Printf("bench-audit: N=%d objects over %d namespaces, %d gatekeeper-library templates with one constraint each, GOMAXPROCS=%d, reports %v (pass results %v)\n",
		c.n, c.namespaces, len(policies), runtime.GOMAXPROCS(0), c.reports, c.reportsPass)

	cp, err := startControlPlane()
	if err != nil {
		return err
	}
	defer cp.stop()
	fmt.Printf("Control plane started in %s\n", cp.started.Round(time.Millisecond))

	begin := time.Now()
	counts, err := load(ctx, cp.client, c)
	if err != nil {
		return err
	}
	for _, p := range policies {
		if err := cp.client.Create(ctx, p.Template.DeepCopy()); err != nil {
			return fmt.Errorf("creating template %s: %w", p.Template.GetName(), err)
		}
	}
	fmt.Printf("Loaded %s in %s\n", counts, time.Since(begin).Round(time.Millisecond))

	kubeconfig := filepath.Join(cp.dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, cp.env.KubeConfig, 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	child, err := startChild(ctx, c, kubeconfig)
	if err != nil {
		return err
	}
	defer child.kill()

	begin = time.Now()
	if err := createConstraints(ctx, cp.client, policies); err != nil {
		return err
	}
	fmt.Printf("The manager loaded the %d templates and constraints in %s\n", len(policies), time.Since(begin).Round(time.Millisecond))

	res, err := child.audit()
	if err != nil {
		return err
	}
	printResult(res)

	if !c.verify {
		return nil
	}
	totals, err := readTotals(ctx, cp.client, policies)
	if err != nil {
		return err
	}
	begin = time.Now()
	offline, reviewed, err := reviewOffline(ctx, cp.config, policies)
	if err != nil {
		return err
	}
	fmt.Printf("Offline review of %d objects with a fresh engine took %s\n", reviewed, time.Since(begin).Round(time.Millisecond))
	if err := compare(policies, totals, offline); err != nil {
		return err
	}
	if c.reports {
		if err := verifyReports(ctx, cp.config, c, policies, totals); err != nil {
			return err
		}
	}
	if c.keep {
		fmt.Printf("Control plane kept running; KUBECONFIG=%s. Interrupt to stop.\n", kubeconfig)
		<-ctx.Done()
	}
	return nil
}

// child is the process running the manager and the audit.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Scanner
}

func startChild(ctx context.Context, c config, kubeconfig string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program: %w", err)
	}
	args := []string{"-child", "-child-kubeconfig", kubeconfig, fmt.Sprintf("-runs=%d", c.runs),
		fmt.Sprintf("-chunk=%d", c.chunk), fmt.Sprintf("-workers=%d", c.workers), "-cpuprofile=" + c.cpuProfile, "-memprofile=" + c.memProfile,
		fmt.Sprintf("-reports=%v", c.reports), fmt.Sprintf("-reports-pass=%v", c.reportsPass)}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the audit process: %w", err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	return &child{cmd: cmd, stdin: stdin, stdout: sc}, nil
}

// audit tells the child to run the audit, and reads its result.
func (ch *child) audit() (*childResult, error) {
	if _, err := io.WriteString(ch.stdin, "run\n"); err != nil {
		return nil, fmt.Errorf("starting the audit: %w", err)
	}
	for ch.stdout.Scan() {
		line := ch.stdout.Bytes()
		if !strings.HasPrefix(string(line), "{") {
			continue
		}
		res := &childResult{}
		if err := json.Unmarshal(line, res); err != nil {
			return nil, fmt.Errorf("reading the audit's result: %w", err)
		}
		if res.Error != "" {
			return nil, errors.New(res.Error)
		}
		return res, nil
	}
	return nil, fmt.Errorf("the audit process ended without a result: %w", ch.cmd.Wait())
}

func (ch *child) kill() {
	_ = ch.stdin.Close()
	done := make(chan struct{})
	go func() { _ = ch.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = ch.cmd.Process.Kill()
		<-done
	}
}

func printResult(res *childResult) {
	fmt.Printf("Audit process: peak RSS %s while starting (templates compiled, constraints loaded), RSS %s before the first run\n",
		mb(res.StartupPeakRSS), mb(res.RSSBefore))
	for i, r := range res.Runs {
		fmt.Printf("Run %d: %s, peak RSS %s; %d kinds, %d objects listed, %d reviewed, %d violations %v, %d statuses written, %d list errors, %d review errors\n",
			i+1, r.Duration.Round(time.Millisecond), mb(r.PeakRSS), r.Kinds, r.ObjectsListed, r.ObjectsReviewed,
			r.Violations, r.ByAction, r.StatusWrites, r.ListErrors, r.ReviewErrors)
		fmt.Printf("Run %d CPU: audit process %s, kube-apiserver %s, etcd %s\n", i+1,
			r.CPU.Audit.Round(10*time.Millisecond), r.CPU.APIServer.Round(10*time.Millisecond), r.CPU.Etcd.Round(10*time.Millisecond))
		if r.Reports != nil {
			fmt.Printf("Run %d reports: %s (CRDs installed in %s), %d reports of %d results, %d written (%s), %d unchanged (%d namespaces by digest), %d deleted, %d errors; %s of results spilled to disk\n",
				i+1, r.Reports.Duration.Round(time.Millisecond), r.Reports.Install.Round(time.Millisecond), r.Reports.Reports,
				r.Reports.Results, r.Reports.Writes, mb(r.Reports.Bytes/1024), r.Reports.Unchanged, r.Reports.Digested,
				r.Reports.Deletes, r.Reports.Errors, mb(r.ReportSpilled/1024))
		}
	}
}

func mb(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

// readTotals reads each library constraint's status.totalViolations.
func readTotals(ctx context.Context, c client.Client, policies []gklibrary.Policy) (map[string]int64, error) {
	out := map[string]int64{}
	for _, p := range policies {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(p.Constraint.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKey{Name: p.Constraint.GetName()}, u); err != nil {
			return nil, fmt.Errorf("reading constraint %s: %w", p.Constraint.GetName(), err)
		}
		n, found, _ := unstructured.NestedInt64(u.Object, "status", "totalViolations")
		if !found {
			n = -1
		}
		out[key(p)] = n
	}
	return out, nil
}

// compare checks the audit's totals against the offline review's.
func compare(policies []gklibrary.Policy, audited map[string]int64, offline map[string]int) error {
	var bad []string
	total := 0
	keys := make([]string, 0, len(policies))
	for _, p := range policies {
		keys = append(keys, key(p))
	}
	sort.Strings(keys)
	for _, k := range keys {
		total += offline[k]
		if audited[k] != int64(offline[k]) {
			bad = append(bad, fmt.Sprintf("%s: status says %d, offline review finds %d", k, audited[k], offline[k]))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d constraints disagree with the offline review:\n  %s", len(bad), len(keys), strings.Join(bad, "\n  "))
	}
	fmt.Printf("Verified: the totalViolations of all %d constraints equal the offline review's (%d violations in all)\n", len(keys), total)
	return nil
}

// restConfig loads a kubeconfig file.
func restConfig(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	return cfg, nil
}
