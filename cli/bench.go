package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/engine"
)

// benchResult is what portcullis bench reports.
type benchResult struct {
	// Engine is rego or cel with --engine, empty otherwise.
	Engine        string  `json:"engine,omitempty"`
	Templates     int     `json:"templates"`
	Constraints   int     `json:"constraints"`
	Objects       int     `json:"objects"`
	Iterations    int     `json:"iterations"`
	Concurrency   int     `json:"concurrency"`
	Reviews       int     `json:"reviews"`
	Violations    int64   `json:"violations"`
	Errors        int64   `json:"errors"`
	SetupSeconds  float64 `json:"setupSeconds"`
	TotalSeconds  float64 `json:"totalSeconds"`
	ReviewsPerSec float64 `json:"reviewsPerSecond"`
	MeanMs        float64 `json:"meanMs"`
	P50Ms         float64 `json:"p50Ms"`
	P95Ms         float64 `json:"p95Ms"`
	P99Ms         float64 `json:"p99Ms"`
	BytesPerRev   uint64  `json:"bytesPerReview,omitempty"`
	AllocsPerRev  uint64  `json:"allocsPerReview,omitempty"`
}

func newBenchCmd() *cobra.Command {
	var (
		files       []string
		iterations  int
		warmup      int
		concurrency int
		output      string
		memory      bool
		cpuprofile  string
		resultCache bool
		engineName  string
		celFirst    bool
	)
	cmd := &cobra.Command{
		Use:   "bench -f FILE|DIR ...",
		Short: "Measure review throughput and latency for the templates, constraints and objects given",
		Long: `Review every object given with -f, --iterations times, against every template and
constraint given, and report reviews per second and the latency per review
(mean, p50, p95, p99). Objects are reviewed at the gator enforcement point, as
gator bench does, so the figures can be set beside it on the same files.
Every iteration reviews the same objects, so the engine's result cache is
off unless --result-cache is given: the figures are those of evaluating
the policies.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if iterations < 1 || concurrency < 1 || warmup < 0 {
				return errors.New("--iterations and --concurrency must be at least 1, --warmup at least 0")
			}
			if output != "table" && output != "json" && output != "yaml" {
				return fmt.Errorf("-o: %q is not table, json or yaml", output)
			}
			var runs []string
			switch engineName {
			case "":
				runs = []string{""}
			case benchRego, benchCEL:
				runs = []string{engineName}
			case "all":
				runs = []string{benchRego, benchCEL}
			default:
				return fmt.Errorf("--engine: %q is not rego, cel or all", engineName)
			}
			opts := engine.Options{EnforcementPoints: []string{engine.EnforcementPointGator}, DisableK8sNativeValidation: !celFirst}
			if !resultCache {
				opts.ResultCacheSize = -1
			}
			b := benchRun{files: files, stdin: cmd.InOrStdin(), stderr: cmd.ErrOrStderr(), opts: opts,
				iterations: iterations, warmup: warmup, concurrency: concurrency, memory: memory}
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer f.Close()
				b.profile = f
			}
			var results []*benchResult
			for _, name := range runs {
				res, err := b.run(cmd.Context(), name)
				if err != nil {
					return err
				}
				results = append(results, res)
			}
			if len(results) == 1 {
				return printBench(cmd.OutOrStdout(), output, results[0])
			}
			return printComparison(cmd.OutOrStdout(), output, results[0], results[1])
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a file or directory of templates, constraints and objects (repeatable)")
	cmd.Flags().IntVarP(&iterations, "iterations", "n", 100, "how many times every object is reviewed")
	cmd.Flags().IntVar(&warmup, "warmup", 1, "iterations run before measuring")
	cmd.Flags().IntVarP(&concurrency, "concurrency", "c", 1, "reviews run in parallel")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	cmd.Flags().BoolVar(&memory, "memory", false, "also report bytes and allocations per review")
	cmd.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the measured run to this file")
	cmd.Flags().BoolVar(&resultCache, "result-cache", false, "keep the engine's result cache on: repeated objects are then mostly answered from it")
	cmd.Flags().StringVarP(&engineName, "engine", "e", "", "engine to measure, as gator bench: rego (templates with Rego, run as Rego), cel (templates with CEL, run as CEL) or all (both, and a comparison); default: every template on the engine the manager would run")
	cmd.Flags().BoolVar(&celFirst, "enable-k8s-native-validation", true, k8sNativeValidationUsage+"; without --engine only")
	return cmd
}

// Engines bench --engine measures.
const (
	benchRego = "rego"
	benchCEL  = "cel"
)

// benchRun is one bench invocation's settings.
type benchRun struct {
	files                           []string
	stdin                           io.Reader
	stderr                          io.Writer
	opts                            engine.Options
	iterations, warmup, concurrency int
	memory                          bool
	profile                         *os.File // CPU profile of the (first) measured run, or nil
}

// run loads the policies for an engine (rego, cel, or "" for the
// manager's choice) and measures them.
func (b *benchRun) run(ctx context.Context, name string) (*benchResult, error) {
	start := time.Now()
	opts := b.opts
	var keep func(*templates.ConstraintTemplate) bool
	switch name {
	case benchRego:
		opts.DisableK8sNativeValidation = true
		keep = func(ct *templates.ConstraintTemplate) bool { return engine.HasCode(ct, engine.EngineRego) }
	case benchCEL:
		opts.DisableK8sNativeValidation = false
		keep = func(ct *templates.ConstraintTemplate) bool { return engine.HasCode(ct, engine.EngineCEL) }
	}
	ps, err := loadPolicySet(ctx, b.files, b.stdin, opts, keep)
	if err != nil {
		return nil, err
	}
	if len(ps.skipped) > 0 {
		what := "Rego"
		if name == benchCEL {
			what = "CEL"
		}
		fmt.Fprintf(b.stderr, "warning: %s engine: skipped %d templates without %s code (and their %d constraints): %s\n",
			name, len(ps.skipped), what, ps.skippedConstraints, strings.Join(ps.skipped, ", "))
	}
	if name == benchCEL {
		fmt.Fprintln(b.stderr, "note: the CEL engine does not read referential data (data.inventory)")
	}
	if len(ps.objects) == 0 {
		return nil, errors.New("no objects to review: give them with -f beside the templates and constraints")
	}
	res := &benchResult{
		Engine:    name,
		Templates: ps.templates, Constraints: ps.constraints, Objects: len(ps.objects),
		Iterations: b.iterations, Concurrency: b.concurrency,
		SetupSeconds: time.Since(start).Seconds(),
	}
	if _, err := runBench(ctx, ps, b.warmup, b.concurrency, nil); err != nil {
		return nil, err
	}
	if b.profile != nil {
		if err := pprof.StartCPUProfile(b.profile); err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
		b.profile = nil
	}
	var before, after runtime.MemStats
	if b.memory {
		runtime.GC()
		runtime.ReadMemStats(&before)
	}
	t0 := time.Now()
	lat, err := runBench(ctx, ps, b.iterations, b.concurrency, res)
	total := time.Since(t0)
	if err != nil {
		return nil, err
	}
	if b.memory {
		runtime.ReadMemStats(&after)
		res.BytesPerRev = (after.TotalAlloc - before.TotalAlloc) / uint64(len(lat))
		res.AllocsPerRev = (after.Mallocs - before.Mallocs) / uint64(len(lat))
	}
	summarize(res, lat, total)
	return res, nil
}

// printComparison prints bench --engine all: each engine's results, then
// a comparison, as gator bench does.
func printComparison(w io.Writer, format string, rego, cel *benchResult) error {
	if format != "table" {
		both := map[string]*benchResult{benchRego: rego, benchCEL: cel}
		if format == "json" {
			out, err := json.MarshalIndent(both, "", "  ")
			if err != nil {
				return fmt.Errorf("encoding results: %w", err)
			}
			_, err = fmt.Fprintln(w, string(out))
			return err
		}
		out, err := yaml.Marshal(both)
		if err != nil {
			return fmt.Errorf("encoding results: %w", err)
		}
		_, err = w.Write(out)
		return err
	}
	for _, r := range []*benchResult{rego, cel} {
		fmt.Fprintf(w, "=== Benchmark Results: %s Engine ===\n\n", engineTitle(r.Engine))
		if err := printBench(w, format, r); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "=== Engine Comparison ===\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Metric\tRego\tCEL")
	fmt.Fprintln(tw, "------\t------\t------")
	rows := []struct {
		name string
		f    func(*benchResult) string
	}{
		{"Templates", func(r *benchResult) string { return fmt.Sprint(r.Templates) }},
		{"Constraints", func(r *benchResult) string { return fmt.Sprint(r.Constraints) }},
		{"Setup Time", func(r *benchResult) string { return fmt.Sprintf("%.2fms", r.SetupSeconds*1000) }},
		{"Throughput", func(r *benchResult) string { return fmt.Sprintf("%.0f/sec", r.ReviewsPerSec) }},
		{"Mean Latency", func(r *benchResult) string { return fmt.Sprintf("%.3fms", r.MeanMs) }},
		{"P95 Latency", func(r *benchResult) string { return fmt.Sprintf("%.3fms", r.P95Ms) }},
		{"P99 Latency", func(r *benchResult) string { return fmt.Sprintf("%.3fms", r.P99Ms) }},
		{"Violations", func(r *benchResult) string { return fmt.Sprint(r.Violations) }},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", row.name, row.f(rego), row.f(cel))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rego.ReviewsPerSec > 0 && cel.ReviewsPerSec > 0 {
		faster, slower, ratio := "CEL", "Rego", cel.ReviewsPerSec/rego.ReviewsPerSec
		if ratio < 1 {
			faster, slower, ratio = "Rego", "CEL", 1/ratio
		}
		fmt.Fprintf(w, "\nPerformance: %s is %.2fx faster than %s\n", faster, ratio, slower)
	}
	return nil
}

func engineTitle(name string) string {
	if name == benchCEL {
		return "CEL"
	}
	return "Rego"
}

// runBench reviews every object `iterations` times on `concurrency`
// goroutines and returns each review's latency.
func runBench(ctx context.Context, ps *policySet, iterations, concurrency int, res *benchResult) ([]time.Duration, error) {
	n := iterations * len(ps.objects)
	lat := make([]time.Duration, n)
	var next, violations, errs atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				item := ps.objects[i%len(ps.objects)]
				t := time.Now()
				resp, err := ps.engine.Review(ctx, item.input, engine.EnforcementPointGator)
				lat[i] = time.Since(t)
				if err != nil {
					errs.Add(1)
					once.Do(func() { firstErr = fmt.Errorf("%s: %w", item.source, err) })
					continue
				}
				violations.Add(int64(len(resp.Violations)))
			}
		})
	}
	wg.Wait()
	if res != nil {
		res.Violations = violations.Load()
		res.Errors = errs.Load()
		res.Reviews = n
	}
	if firstErr != nil && errs.Load() == int64(n) {
		return nil, firstErr
	}
	return lat, nil
}

func summarize(res *benchResult, lat []time.Duration, total time.Duration) {
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	res.TotalSeconds = total.Seconds()
	res.ReviewsPerSec = float64(len(lat)) / total.Seconds()
	res.MeanMs = ms(sum / time.Duration(len(lat)))
	res.P50Ms, res.P95Ms, res.P99Ms = ms(pct(0.50)), ms(pct(0.95)), ms(pct(0.99))
}

func printBench(w io.Writer, format string, r *benchResult) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding results: %w", err)
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	case "yaml":
		b, err := yaml.Marshal(r)
		if err != nil {
			return fmt.Errorf("encoding results: %w", err)
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rows := [][2]string{
		{"Templates", fmt.Sprint(r.Templates)},
		{"Constraints", fmt.Sprint(r.Constraints)},
		{"Objects", fmt.Sprint(r.Objects)},
		{"Iterations", fmt.Sprint(r.Iterations)},
		{"Concurrency", fmt.Sprint(r.Concurrency)},
		{"Reviews", fmt.Sprint(r.Reviews)},
		{"Violations", fmt.Sprint(r.Violations)},
		{"Errors", fmt.Sprint(r.Errors)},
		{"Setup", fmt.Sprintf("%.3fs", r.SetupSeconds)},
		{"Duration", fmt.Sprintf("%.3fs", r.TotalSeconds)},
		{"Throughput", fmt.Sprintf("%.1f reviews/s", r.ReviewsPerSec)},
		{"Latency mean", fmt.Sprintf("%.3fms", r.MeanMs)},
		{"Latency p50", fmt.Sprintf("%.3fms", r.P50Ms)},
		{"Latency p95", fmt.Sprintf("%.3fms", r.P95Ms)},
		{"Latency p99", fmt.Sprintf("%.3fms", r.P99Ms)},
	}
	if r.AllocsPerRev > 0 {
		rows = append(rows, [2]string{"Memory", fmt.Sprintf("%d B/review, %d allocs/review", r.BytesPerRev, r.AllocsPerRev)})
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}
