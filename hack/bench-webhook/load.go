package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// rateResult is one step of the open-loop load.
type rateResult struct {
	Rate          int
	Sent          int
	Errors        int // transport errors and non-200 answers
	NotDenied     int // 200 answers that did not refuse the Pod (with -mode mutate: did not patch it)
	Achieved      float64
	P50, P90, P99 time.Duration
	Max           time.Duration
	// LateP50 and LateP99 are how late the load generator itself sent
	// requests (its timers and scheduler, on the cores the server
	// shares); latencies include it.
	LateP50, LateP99 time.Duration
	CPUSeconds       float64 // the server's user+system CPU during the step
	LoadCPU          float64 // this load generator's, on the same cores
	RSSkB, HWMkB     int64   // the server's RSS and peak RSS after the step
}

func (r rateResult) cpuPer1000() float64 {
	if r.Sent == 0 {
		return 0
	}
	return r.CPUSeconds / float64(r.Sent) * 1000
}

// loader sends AdmissionReviews over TLS with keep-alive.
type loader struct {
	client *http.Client
	url    string
	tmpl   string
	pods   string
	n      atomic.Uint64
	// mutate expects patches (/v1/mutate) instead of refusals.
	mutate bool
}

func newLoader(caFile, url, pods string) (*loader, error) {
	switch pods {
	case podsSame, podsReplicas, podsDistinct:
	default:
		return nil, fmt.Errorf("-pods: %q is not %s, %s or %s", pods, podsSame, podsReplicas, podsDistinct)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &loader{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, url: url, tmpl: reviewTemplate(), pods: pods}, nil
}

// body makes the next request's AdmissionReview.
func (l *loader) body() []byte {
	var rnd [32]byte
	_, _ = rand.Read(rnd[:])
	return reviewBody(l.tmpl, l.pods, l.n.Add(1), rnd)
}

// send posts one review; it returns the answer's body.
func (l *loader) send(ctx context.Context, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// run sends rate requests a second for d, each at its scheduled time
// whatever the answers before it (an open loop). A request's latency runs
// from when it was due, so that a late send counts against the server
// rather than being hidden (no coordinated omission).
func (l *loader) run(ctx context.Context, rate int, d time.Duration) rateResult {
	n := int(int64(rate) * int64(d) / int64(time.Second))
	interval := time.Second / time.Duration(rate)
	// Every request's body is made before the step starts, so that making
	// them takes nothing from the cores the server shares.
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = l.body()
	}
	lat := make([]time.Duration, n)
	late := make([]time.Duration, n)
	var errs, notDenied atomic.Int32
	var wg sync.WaitGroup
	// Go's timers wake up to about a millisecond late, which would count
	// in every latency. At low rates, where the cores have time to spare,
	// the last part of each wait spins instead; at high rates spinning
	// would take CPU from the server, so the waits only sleep.
	var spin time.Duration
	if rate <= spinMaxRate {
		spin = min(1500*time.Microsecond, interval/3)
	}
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		waitUntil(due, spin)
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			late[i] = time.Since(due)
			code, body, err := l.send(ctx, bodies[i])
			lat[i] = time.Since(due)
			switch {
			case err != nil || code != http.StatusOK:
				errs.Add(1)
			case l.mutate && !bytes.Contains(body, []byte(`"patch":`)):
				notDenied.Add(1) // not mutated
			case !l.mutate && !bytes.Contains(body, []byte(`"allowed":false`)):
				notDenied.Add(1)
			}
		}(i, due)
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	slices.Sort(late)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	latePct := func(p float64) time.Duration { return late[min(len(late)-1, int(float64(len(late))*p))] }
	return rateResult{
		Rate: rate, Sent: n, Errors: int(errs.Load()), NotDenied: int(notDenied.Load()),
		Achieved: float64(n) / elapsed.Seconds(),
		P50:      pct(0.50), P90: pct(0.90), P99: pct(0.99), Max: lat[len(lat)-1],
		LateP50: latePct(0.50), LateP99: latePct(0.99),
	}
}

// spinMaxRate is the highest rate at which waits end spinning.
const spinMaxRate = 400

// waitUntil sleeps until t, spinning through its last spin.
func waitUntil(t time.Time, spin time.Duration) {
	if w := time.Until(t) - spin; w > 0 {
		time.Sleep(w)
	}
	for time.Now().Before(t) {
		runtime.Gosched()
	}
}

// procCPU is a process's user+system CPU time, from /proc.
func procCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	const clockTicks = 100 // USER_HZ on Linux
	return (utime + stime) / clockTicks, nil
}

// procRSS returns a process's VmRSS and VmHWM in kB.
func procRSS(pid int) (rss, hwm int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm, nil
}
