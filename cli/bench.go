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
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-dev/portcullis/engine"
)

// benchResult is what portcullis bench reports.
type benchResult struct {
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
			ctx := cmd.Context()
			start := time.Now()
			opts := engine.Options{EnforcementPoints: []string{engine.EnforcementPointGator}}
			if !resultCache {
				opts.ResultCacheSize = -1
			}
			ps, err := loadPolicySet(ctx, files, cmd.InOrStdin(), opts)
			if err != nil {
				return err
			}
			if len(ps.objects) == 0 {
				return errors.New("no objects to review: give them with -f beside the templates and constraints")
			}
			res := benchResult{
				Templates: ps.templates, Constraints: ps.constraints, Objects: len(ps.objects),
				Iterations: iterations, Concurrency: concurrency,
				SetupSeconds: time.Since(start).Seconds(),
			}
			if _, err := runBench(ctx, ps, warmup, concurrency, nil); err != nil {
				return err
			}
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			var before, after runtime.MemStats
			if memory {
				runtime.GC()
				runtime.ReadMemStats(&before)
			}
			t0 := time.Now()
			lat, err := runBench(ctx, ps, iterations, concurrency, &res)
			total := time.Since(t0)
			if err != nil {
				return err
			}
			if memory {
				runtime.ReadMemStats(&after)
				res.BytesPerRev = (after.TotalAlloc - before.TotalAlloc) / uint64(len(lat))
				res.AllocsPerRev = (after.Mallocs - before.Mallocs) / uint64(len(lat))
			}
			summarize(&res, lat, total)
			return printBench(cmd.OutOrStdout(), output, &res)
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
	return cmd
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
