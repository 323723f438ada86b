// Command bench-webhook measures /v1/admit under load (`make
// bench-webhook`), or /v1/mutate with -mode mutate. It starts the webhook
// in a child process, which loads every gatekeeper-library template with
// its first sample constraint and serves webhook.NewAdmissionHandler (or
// loads the library's mutation samples and serves
// webhook.NewMutationHandler) on controller-runtime's webhook server over
// TLS, as the manager does, without a cluster. It then sends
// AdmissionReviews for a two-container Pod that violates several
// constraints, over TLS with keep-alive, in an open loop at each fixed rate,
// and reports latency percentiles, the child's RSS and CPU-seconds per
// 1,000 requests, and a CPU profile of the child taken at one rate.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-dev/portcullis/engine"
	"github.com/portcullis-dev/portcullis/internal/gklibrary"
	"github.com/portcullis-dev/portcullis/internal/loopback"
)

type config struct {
	library           string
	rates             string
	duration          time.Duration
	warmup            time.Duration
	profileRate       int
	out               string
	maxServingThreads int
	gogc, gomemlimit  string
	resultCacheSize   int
	celFirst          bool
	pods              string
	mode              string
	mutationLibrary   string

	server    bool
	port      int
	pprofAddr string
}

func main() {
	var c config
	flag.StringVar(&c.library, "library", "", "gatekeeper-library's library directory (default ../shared/gatekeeper-library/library beside the repository)")
	flag.StringVar(&c.rates, "rates", "200,400,600,800,1000,1500", "requests per second, one step each")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "length of each step")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "unmeasured load at the first rate before the steps")
	flag.IntVar(&c.profileRate, "profile-rate", 1000, "take the CPU profile during this step (0: none)")
	flag.StringVar(&c.out, "out", "bin/bench-webhook-out", "directory for the CPU profile and the server's log")
	flag.IntVar(&c.maxServingThreads, "max-serving-threads", -1, "the server's --max-serving-threads")
	flag.StringVar(&c.gogc, "gogc", "200", "the server's GOGC, as config/manager sets it (\"\": inherited)")
	flag.StringVar(&c.gomemlimit, "gomemlimit", "", "the server's GOMEMLIMIT (default: inherited)")
	flag.IntVar(&c.resultCacheSize, "result-cache-size", engine.DefaultResultCacheSize, "the server's --result-cache-size (0: off)")
	flag.BoolVar(&c.celFirst, "enable-k8s-native-validation", true, "the server's --enable-k8s-native-validation: templates with CEL and Rego run their CEL")
	flag.StringVar(&c.pods, "pods", podsSame, "what varies between requests: "+podsSame+" (only the request uid: one Pod sent again and again, as the issue's benchmark does), "+
		podsReplicas+" (also the Pod's name and uid, as a ReplicaSet's pods), "+podsDistinct+" (also its containers' images and commands: no two Pods alike, so the result cache never helps)")
	flag.StringVar(&c.mode, "mode", modeAdmit, "the endpoint under load: "+modeAdmit+" (/v1/admit, the library's templates) or "+modeMutate+" (/v1/mutate, the library's mutation samples)")
	flag.StringVar(&c.mutationLibrary, "mutation-library", "", "gatekeeper-library's mutation directory, for -mode mutate (default: beside -library)")
	flag.BoolVar(&c.server, "server", false, "internal: be the webhook server")
	flag.IntVar(&c.port, "port", 0, "internal: the server's port")
	flag.StringVar(&c.pprofAddr, "pprof-addr", "", "internal: the server's pprof address")
	flag.Parse()

	if c.library == "" {
		c.library = gklibrary.DefaultDir
	}
	if c.mutationLibrary == "" {
		c.mutationLibrary = defaultMutationLibrary(c.library)
	}
	if c.mode != modeAdmit && c.mode != modeMutate {
		fmt.Fprintf(os.Stderr, "bench-webhook: -mode %q is not %s or %s\n", c.mode, modeAdmit, modeMutate)
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintf(os.Stderr, "bench-webhook: %v\n", err)
		os.Exit(1)
	}
}

// run is the server or the load generator, until it ends or a signal stops it.
func run(c config) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if c.server {
		return runServer(ctx, c)
	}
	return runLoad(ctx, c)
}

func zapLogger() logr.Logger { return zap.New(zap.WriteTo(os.Stderr)) }

func runLoad(ctx context.Context, c config) error {
	// The load generator shares the cores with the server: collecting
	// its garbage less often leaves more of them to the server. This is
	// the generator's own setting; the server's is -gogc.
	debug.SetGCPercent(800)
	var rates []int
	for f := range strings.SplitSeq(c.rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			return fmt.Errorf("-rates: %q is not a positive number", f)
		}
		rates = append(rates, r)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return err
	}
	pprofAddr, err := loopback.FreeAddr()
	if err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(c.out, "server.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, self, "-server", "-mode", c.mode, "-library", c.library, "-mutation-library", c.mutationLibrary, "-port", strconv.Itoa(port),
		"-pprof-addr", pprofAddr, "-max-serving-threads", strconv.Itoa(c.maxServingThreads),
		"-result-cache-size", strconv.Itoa(c.resultCacheSize),
		"-enable-k8s-native-validation="+strconv.FormatBool(c.celFirst))
	cmd.Stderr = logFile
	cmd.Env = os.Environ()
	for k, v := range map[string]string{"GOGC": c.gogc, "GOMEMLIMIT": c.gomemlimit} {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the server: %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	var ready serverReady
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("the server stopped before serving (see %s): %w", logFile.Name(), err)
	}
	if err := json.Unmarshal(line, &ready); err != nil || ready.Error != "" {
		return fmt.Errorf("the server failed: %s %v", ready.Error, err) //nolint:errorlint // err may be nil, which %w would print as %!w(<nil>)
	}
	pid := cmd.Process.Pid
	if c.mode == modeMutate {
		fmt.Printf("Mode mutate: %d mutators from %s\n", ready.Mutators, c.mutationLibrary)
	}
	fmt.Printf("Server pid %d: %d templates, %d constraints loaded in %.1fs; GOMAXPROCS %s, GOGC %s, GOMEMLIMIT %s, --max-serving-threads %d, --result-cache-size %d, --enable-k8s-native-validation=%v\n",
		pid, ready.Templates, ready.Constraints, ready.LoadSeconds, orDefault(os.Getenv("GOMAXPROCS"), fmt.Sprint(runtime.NumCPU())),
		orDefault(c.gogc, orDefault(os.Getenv("GOGC"), "100")), orDefault(c.gomemlimit, orDefault(os.Getenv("GOMEMLIMIT"), "none")), c.maxServingThreads, c.resultCacheSize, c.celFirst)

	fmt.Printf("Requests: -pods %s\n", c.pods)
	path := "/v1/admit"
	if c.mode == modeMutate {
		path = "/v1/mutate"
	}
	l, err := newLoader(ready.CA, fmt.Sprintf("https://127.0.0.1:%d%s", port, path), c.pods)
	if err != nil {
		return err
	}
	l.mutate = c.mode == modeMutate
	code, body, err := l.send(ctx, l.body())
	if err != nil || code != 200 {
		return fmt.Errorf("first request: HTTP %d %s: %v", code, body, err) //nolint:errorlint // err may be nil, which %w would print as %!w(<nil>)
	}
	if l.mutate {
		if err := checkMutated(body); err != nil {
			return err
		}
		return measure(ctx, c, l, pid, self, pprofAddr, rates)
	}
	var ar struct {
		Response struct {
			Allowed bool `json:"allowed"`
			Status  struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"status"`
		} `json:"response"`
	}
	if err := json.Unmarshal(body, &ar); err != nil || ar.Response.Allowed {
		return fmt.Errorf("first request not refused: %s", body)
	}
	lines := strings.Split(ar.Response.Status.Message, "\n")
	fmt.Printf("The Pod is refused (%d) with %d violations:\n  %s\n", ar.Response.Status.Code, len(lines), strings.Join(lines, "\n  "))
	return measure(ctx, c, l, pid, self, pprofAddr, rates)
}

// measure runs the warm-up and every rate step, and prints the results.
func measure(ctx context.Context, c config, l *loader, pid int, self, pprofAddr string, rates []int) error {
	_, rssIdle, _ := procRSS(pid)

	if c.warmup > 0 {
		l.run(ctx, rates[0], c.warmup)
	}
	var results []rateResult
	profile := filepath.Join(c.out, "cpu.pprof")
	for _, rate := range rates {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var profErr chan error
		if rate == c.profileRate {
			profErr = make(chan error, 1)
			go func() { profErr <- fetchProfile(ctx, pprofAddr, c.duration-time.Second, profile) }()
		}
		cpu0, err := procCPU(pid)
		if err != nil {
			return err
		}
		self0, _ := procCPU(os.Getpid())
		r := l.run(ctx, rate, c.duration)
		cpu1, err := procCPU(pid)
		if err != nil {
			return err
		}
		self1, _ := procCPU(os.Getpid())
		r.CPUSeconds, r.LoadCPU = cpu1-cpu0, self1-self0
		r.RSSkB, r.HWMkB, _ = procRSS(pid)
		if profErr != nil {
			if err := <-profErr; err != nil {
				fmt.Fprintf(os.Stderr, "CPU profile: %v\n", err)
				profile = ""
			}
		}
		results = append(results, r)
		fmt.Printf("  %5d/s: p50 %s p99 %s (%d sent, %d errors)\n", rate, ms(r.P50), ms(r.P99), r.Sent, r.Errors)
	}
	printResults(results, rssIdle, c.mode)
	if c.profileRate > 0 && profile != "" {
		printProfile(self, profile, c.profileRate)
	}
	return nil
}

func printResults(results []rateResult, rssIdle int64, mode string) {
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	unexpected := "not denied"
	if mode == modeMutate {
		unexpected = "not mutated"
	}
	fmt.Fprintln(w, "rate/s\tachieved/s\tp50\tp90\tp99\tmax\tsent late p50\tp99\terrors\t"+unexpected+"\tCPU-s/1000 req\tserver CPU\tload gen CPU\tRSS MB\tpeak RSS MB\t")
	for _, r := range results {
		secs := float64(r.Sent) / r.Achieved
		fmt.Fprintf(w, "%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.3f\t%.0f%%\t%.0f%%\t%.0f\t%.0f\t\n",
			r.Rate, r.Achieved, ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), ms(r.LateP50), ms(r.LateP99), r.Errors, r.NotDenied,
			r.cpuPer1000(), 100*r.CPUSeconds/secs, 100*r.LoadCPU/secs, float64(r.RSSkB)/1024, float64(r.HWMkB)/1024)
	}
	_ = w.Flush()
	fmt.Println("Latencies run from when each request was due, errors included; errors are non-200 answers (503: shed, over capacity).")
	fmt.Println("\"Sent late\" is how long after it was due the load generator started each request: part of every latency, and not the server's.")
	fmt.Printf("(RSS after loading, before any load: %.0f MB)\n\n", float64(rssIdle)/1024)
	if mode == modeMutate {
		fmt.Println("Goal (issue 13: the 16 library mutators, one Pod per request):")
		for _, r := range results {
			if r.Rate == 200 {
				check(fmt.Sprintf("at 200/s p99 %s <= 2 ms", ms(r.P99)), r.P99 <= 2*time.Millisecond)
			}
		}
		return
	}
	fmt.Println("Goals (set for one Pod sent again and again, -pods same):")
	var peak int64
	p99ok := true
	for _, r := range results {
		peak = max(peak, r.HWMkB)
		if r.Rate <= 1500 && r.P99 >= 100*time.Millisecond {
			p99ok = false
		}
		if r.Rate == 200 {
			check(fmt.Sprintf("at 200/s p50 %s <= 1 ms and p99 %s <= 3 ms", ms(r.P50), ms(r.P99)),
				r.P50 <= time.Millisecond && r.P99 <= 3*time.Millisecond)
		}
	}
	check("p99 < 100 ms at every rate up to 1,500/s", p99ok)
	check(fmt.Sprintf("peak RSS %.0f MB <= 150 MB", float64(peak)/1024), peak <= 150*1024)
}

func check(what string, ok bool) {
	mark := "PASS"
	if !ok {
		mark = "FAIL"
	}
	fmt.Printf("  %s  %s\n", mark, what)
}

func printProfile(binary, profile string, rate int) {
	fmt.Printf("\nCPU profile of the server at %d/s (%s):\n", rate, profile)
	for _, args := range [][]string{
		{"tool", "pprof", "-top", "-nodecount=25", binary, profile},
		{"tool", "pprof", "-top", "-cum", "-nodecount=25", binary, profile},
	} {
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			fmt.Printf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		fmt.Printf("\n$ go %s\n%s", strings.Join(args[:len(args)-2], " "), out)
	}
}

func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	secs := max(1, int(d/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), http.NoBody)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
