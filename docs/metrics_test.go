package docs

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docMetric is a row of the table in metrics.md.
type docMetric struct {
	name, typ string
	labels    []string
	buckets   []float64 // histograms only
}

var (
	metricRowRE    = regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| (counter|gauge|histogram) \\|([^|]*)\\|")
	backquotedRE   = regexp.MustCompile("`([a-z_]+)`")
	bucketBulletRE = regexp.MustCompile("^- `([a-z_]+)`: (.*)$")
	optsNameRE     = regexp.MustCompile(`\bName:\s*(?:"([^"]+)"|([A-Za-z_][A-Za-z0-9_]*)\b)`)
	sampleRE       = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? \S+`)
	labelPairRE    = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// parseMetricsDoc reads the metric table and the bucket lists of
// metrics.md.
func parseMetricsDoc(t *testing.T, path string) map[string]*docMetric {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]*docMetric{}
	for _, m := range metricRowRE.FindAllStringSubmatch(string(b), -1) {
		dm := &docMetric{name: m[1], typ: m[2]}
		for _, l := range backquotedRE.FindAllStringSubmatch(m[3], -1) {
			dm.labels = append(dm.labels, l[1])
		}
		doc[dm.name] = dm
	}
	// A bullet "- `name`: 1, 2, 3" may continue on indented lines.
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		m := bucketBulletRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		text := m[2]
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "  ") {
			i++
			text += " " + strings.TrimSpace(lines[i])
		}
		dm := doc[m[1]]
		if dm == nil {
			t.Errorf("metrics.md lists buckets for %s, which its table lacks", m[1])
			continue
		}
		for f := range strings.SplitSeq(text, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				t.Errorf("metrics.md: bucket %q of %s: %v", f, m[1], err)
				continue
			}
			dm.buckets = append(dm.buckets, v)
		}
	}
	return doc
}

// checkMetrics holds metrics.md to the code and to a live /metrics: the
// same metric names as the sources register, and for every metric with
// series, the documented type, labels and buckets.
func checkMetrics(t *testing.T, docPath, root, addr string) {
	t.Helper()
	doc := parseMetricsDoc(t, docPath)
	if len(doc) == 0 {
		t.Fatal("no metric table found in metrics.md")
	}

	inCode := registeredMetrics(t, root)
	for name, src := range inCode {
		if doc[name] == nil {
			t.Errorf("metrics.md lacks %s, which %s registers", name, src)
		}
	}
	for name := range doc {
		if inCode[name] == "" {
			t.Errorf("metrics.md documents %s, which no source registers", name)
		}
	}

	types, samples := scrape(t, "http://"+addr+"/metrics")
	for name, dm := range doc {
		typ, ok := types[name]
		if !ok {
			if len(dm.labels) == 0 {
				t.Errorf("%s is not served at %s", name, addr)
			} else {
				t.Logf("%s has no series yet", name)
			}
			continue
		}
		if typ != dm.typ {
			t.Errorf("%s is a %s, metrics.md says %s", name, typ, dm.typ)
		}
		labels := map[string]bool{}
		var les []float64
		for _, s := range samples {
			base := s.name
			if dm.typ == "histogram" {
				base = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, "_bucket"), "_sum"), "_count")
			}
			if base != name {
				continue
			}
			for k, v := range s.labels {
				if k == "le" && s.name == name+"_bucket" {
					if v != "+Inf" {
						f, err := strconv.ParseFloat(v, 64)
						if err != nil {
							t.Errorf("%s: bucket %q: %v", name, v, err)
						}
						if !slices.Contains(les, f) {
							les = append(les, f)
						}
					}
					continue
				}
				labels[k] = true
			}
		}
		got := make([]string, 0, len(labels))
		for k := range labels {
			got = append(got, k)
		}
		slices.Sort(got)
		want := slices.Clone(dm.labels)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s has labels %v, metrics.md says %v", name, got, want)
		}
		if dm.typ == "histogram" {
			slices.Sort(les)
			if !slices.Equal(les, dm.buckets) {
				t.Errorf("%s has buckets %v, metrics.md says %v", name, les, dm.buckets)
			}
		}
	}
}

// registeredMetrics finds the metrics the code defines: the Name of every
// prometheus Opts in a non-test Go file that imports client_golang, as a
// literal or as a constant of the same file. It maps each name to its file.
func registeredMetrics(t *testing.T, root string) map[string]string {
	t.Helper()
	skip := map[string]bool{".git": true, ".dev": true, "bin": true, "hack": true, "docs": true, "tmp": true}
	found := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skip[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		src := string(b)
		if !strings.Contains(src, `"github.com/prometheus/client_golang/prometheus"`) {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		for _, m := range optsNameRE.FindAllStringSubmatch(src, -1) {
			name := m[1]
			if name == "" {
				c := regexp.MustCompile(`\b` + m[2] + `\s*=\s*"([^"]+)"`).FindStringSubmatch(src)
				if c == nil {
					t.Errorf("%s: cannot resolve the metric name %s", rel, m[2])
					continue
				}
				name = c[1]
			}
			found[name] = rel
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		t.Fatal("found no metric definitions in the code")
	}
	return found
}

type sample struct {
	name   string
	labels map[string]string
}

// scrape reads a Prometheus text exposition: the TYPE of each family and
// every sample's name and labels.
func scrape(t *testing.T, url string) (map[string]string, []sample) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: status %d, %v", url, resp.StatusCode, err)
	}
	types := map[string]string{}
	var samples []sample
	for line := range strings.SplitSeq(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if f := strings.Fields(rest); len(f) == 2 {
				types[f[0]] = f[1]
			}
			continue
		}
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{name: m[1], labels: map[string]string{}}
		for _, p := range labelPairRE.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		samples = append(samples, s)
	}
	return types, samples
}
