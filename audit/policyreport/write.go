package policyreport

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
)

// Labels and annotations of the reports.
const (
	// LabelManagedBy marks the reports the audit owns, with ManagedBy:
	// only those are ever updated or deleted.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "portcullis"
	// AnnotationHash is the hash of a report's results but their
	// timestamps: a report whose new results hash the same is not
	// written again.
	AnnotationHash = "policy.portcullis.dev/results-hash"
)

// metadataOnly asks the API server for the metadata of the object written.
const metadataOnly = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

// Defaults of WriterOptions.
const (
	DefaultConcurrency = 4
	DefaultQPS         = 20
)

// +kubebuilder:rbac:groups=wgpolicyk8s.io,resources=policyreports;clusterpolicyreports,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=openreports.io,resources=reports;clusterreports,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;create

// WriterOptions configure a Writer.
type WriterOptions struct {
	// MaxResults bounds the results of one report (DefaultMaxResults when
	// 0); reports are also kept under MaxReportBytes.
	MaxResults int
	// Concurrency is how many namespaces' reports are written at once
	// (DefaultConcurrency when 0).
	Concurrency int
	// QPS and Burst rate-limit the writer's requests (DefaultQPS and twice
	// QPS when 0).
	QPS   float32
	Burst int
	// FieldManager is the field manager of the writes.
	FieldManager string
}

// Writer writes a run's results as reports.
type Writer struct {
	opts WriterOptions
	rest rest.Interface
	meta metadata.Interface
	dyn  dynamic.Interface
	disc discovery.DiscoveryInterface
	log  logr.Logger

	// written remembers, by API and namespace, the digest of the results
	// whose reports the last run left complete, and those reports' names
	// and hashes: a namespace with the same digest whose reports are still
	// those is unchanged, which is known without building its reports.
	mu      sync.Mutex
	written map[string]writtenNS
	// bufs are read buffers (*[]byte) for digests.
	bufs sync.Pool
}

// writtenNS is what a run left in a namespace's reports.
type writtenNS struct {
	digest  uint64
	results int
	reports map[string]string // name: results hash
}

// NewWriter builds a writer that reaches the API server with cfg, under
// its own rate limits.
func NewWriter(cfg *rest.Config, opts WriterOptions, log logr.Logger) (*Writer, error) {
	if opts.MaxResults <= 0 {
		opts.MaxResults = DefaultMaxResults
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.QPS <= 0 {
		opts.QPS = DefaultQPS
	}
	if opts.Burst <= 0 {
		opts.Burst = max(1, int(2*opts.QPS))
	}
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst, c.RateLimiter = opts.QPS, opts.Burst, nil
	raw, err := rest.UnversionedRESTClientFor(dynamic.ConfigFor(c))
	if err != nil {
		return nil, fmt.Errorf("creating the report writer's REST client: %w", err)
	}
	meta, err := metadata.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("creating the report writer's metadata client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("creating the report writer's dynamic client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("creating the report writer's discovery client: %w", err)
	}
	return &Writer{opts: opts, rest: raw, meta: meta, dyn: dyn, disc: disc, log: log, written: map[string]writtenNS{}}, nil
}

// Input is what Write writes.
type Input struct {
	Collector *Collector
	// Start is the run's start, the timestamp of results first found by
	// this run.
	Start time.Time
	// Live reports whether a namespace exists and is not being deleted:
	// the reports of others are deleted. An error (the namespace could not
	// be read) leaves its reports as they are.
	Live func(namespace string) (bool, error)
	// Kept, when set, tells the kinds that failed to list this run: the
	// results the current reports hold for them are kept.
	Kept func(apiVersion, kind string) bool
}

// Stats are what Write did.
type Stats struct {
	// API is the report API written.
	API API
	// Reports counts the reports the run's results make; Unchanged those
	// not written as they held those results already.
	Reports   int
	Unchanged int
	// Digested counts the namespaces known unchanged from their results'
	// digest, without building their reports.
	Digested int
	// Results counts the results in the reports.
	Results int
	// Writes counts the reports applied, Bytes their size; Deletes the
	// reports deleted.
	Writes  int
	Bytes   int64
	Deletes int
	// Errors counts the reports the API server refused to write or delete.
	Errors int
	// Install is how long installing the CRDs took, Duration how long
	// Write took in all.
	Install  time.Duration
	Duration time.Duration
}

func (s *Stats) add(o *Stats) {
	s.Reports += o.Reports
	s.Unchanged += o.Unchanged
	s.Digested += o.Digested
	s.Results += o.Results
	s.Writes += o.Writes
	s.Bytes += o.Bytes
	s.Deletes += o.Deletes
	s.Errors += o.Errors
}

// existing is a report the audit wrote before.
type existing struct {
	name string
	hash string
}

// Write makes the reports hold the collected results: every namespace
// with results gets its reports (written if changed), every report of a
// namespace without results is emptied, or deleted once empty, and the
// reports of namespaces gone are deleted. An error means no report could
// be written (the report API is not served and its CRDs could not be
// installed, or the current reports could not be listed); a report the
// API server refuses is logged and counted, and the others are written.
func (w *Writer) Write(ctx context.Context, in Input) (stats Stats, err error) {
	begin := time.Now()
	defer func() { stats.Duration = time.Since(begin) }()
	if err := in.Collector.Err(); err != nil {
		return stats, fmt.Errorf("collecting results: %w", err)
	}
	api, installed, err := w.chooseAPI(ctx)
	stats.Install = installed
	if err != nil {
		return stats, err
	}
	stats.API = api
	current, err := w.listExisting(ctx, api)
	if err != nil {
		return stats, err
	}
	if api.openReports {
		stats.add(w.removeAPI(ctx, WGPolicy))
	}
	namespaces := in.Collector.Namespaces()
	found := make(map[string]bool, len(namespaces))
	for _, ns := range namespaces {
		found[ns] = true
	}
	for ns := range current {
		if !found[ns] {
			namespaces = append(namespaces, ns)
		}
	}
	slices.Sort(namespaces)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		next = make(chan string)
	)
	for range w.opts.Concurrency {
		wg.Go(func() {
			for ns := range next {
				s := w.syncNamespace(ctx, api, &in, ns, current[ns])
				mu.Lock()
				stats.add(&s)
				mu.Unlock()
			}
		})
	}
	for _, ns := range namespaces {
		if ctx.Err() != nil {
			break
		}
		next <- ns
	}
	close(next)
	wg.Wait()
	w.keepOnly(api, namespaces)
	return stats, ctx.Err()
}

// listExisting lists the reports the audit owns in api, by namespace.
func (w *Writer) listExisting(ctx context.Context, api API) (map[string][]existing, error) {
	out := map[string][]existing{}
	for _, res := range []string{api.Resource, api.ClusterResource} {
		client := w.meta.Resource(api.GroupVersion.WithResource(res))
		opts := metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy, Limit: 500}
		for {
			list, err := client.List(ctx, opts)
			if err != nil {
				return nil, fmt.Errorf("listing the current %s: %w", api.GroupVersion.WithResource(res).GroupResource(), err)
			}
			for i := range list.Items {
				m := &list.Items[i]
				out[m.Namespace] = append(out[m.Namespace], existing{name: m.Name, hash: m.Annotations[AnnotationHash]})
			}
			if list.Continue == "" {
				break
			}
			opts.Continue = list.Continue
		}
	}
	return out, nil
}

// removeAPI deletes the audit's reports in an API it no longer writes.
func (w *Writer) removeAPI(ctx context.Context, api API) *Stats {
	s := &Stats{}
	if ok, err := w.served(api); err != nil || !ok {
		return s
	}
	current, err := w.listExisting(ctx, api)
	if err != nil {
		w.log.Error(err, "Listing the reports of an API no longer written failed", "api", api.String())
		s.Errors++
		return s
	}
	for ns, reports := range current {
		for _, e := range reports {
			w.delete(ctx, api, ns, e.name, s)
		}
	}
	return s
}

// syncNamespace writes the reports of one namespace.
func (w *Writer) syncNamespace(ctx context.Context, api API, in *Input, ns string, current []existing) Stats {
	var s Stats
	if ns != "" {
		live, err := in.Live(ns)
		if err != nil {
			w.log.Error(err, "Whether the namespace exists is unknown; its reports are left as they are", "namespace", ns)
			s.Errors++
			return s
		}
		if !live {
			w.forget(api, ns)
			for _, e := range current {
				w.delete(ctx, api, ns, e.name, &s)
			}
			return s
		}
	}
	if in.Kept == nil && w.unchanged(api, in, ns, current, &s) {
		return s
	}
	// Remembered again below only if the reports end up complete.
	w.forget(api, ns)
	results, err := in.Collector.Results(ns)
	if err != nil {
		w.log.Error(err, "Reading the run's results failed; the namespace's reports are left as they are", "namespace", ns)
		s.Errors++
		return s
	}
	entries := make([]entry, 0, len(results))
	for i := range results {
		entries = append(entries, in.Collector.newEntry(&results[i]))
	}
	var previous []v1alpha2.PolicyReportResult
	if in.Kept != nil && len(current) > 0 {
		// Kinds that failed to list keep their results.
		if previous, err = w.readAll(ctx, api, ns, current); err != nil {
			w.log.Error(err, "Reading the current reports failed; they are left as they are", "namespace", ns)
			s.Errors++
			return s
		}
		// An object listed before its kind failed has its results of
		// this run, which replace those it had.
		found := make(map[subjectKey]bool, len(entries))
		for i := range entries {
			found[in.Collector.subjectKey(&entries[i])] = true
		}
		for i := range previous {
			if len(previous[i].Subjects) > 0 && in.Kept(previous[i].Subjects[0].APIVersion, previous[i].Subjects[0].Kind) &&
				!in.Collector.droppedName(previous[i].Policy) {
				e := oldEntry(&previous[i])
				if !found[in.Collector.subjectKey(&e)] {
					entries = append(entries, e)
				}
			}
		}
	}
	in.Collector.sortEntries(entries)
	parts := split(entries, w.opts.MaxResults)
	s.Reports, s.Results = len(parts), len(entries)
	if len(parts) == 0 {
		if len(current) == 0 {
			return s
		}
		allEmpty := true
		for _, e := range current {
			allEmpty = allEmpty && e.hash == emptyHash
		}
		if allEmpty {
			// Emptied by an earlier run: now deleted.
			for _, e := range current {
				w.delete(ctx, api, ns, e.name, &s)
			}
			return s
		}
		// Emptied first, so that readers see the results resolved.
		parts = []part{newPart(0, nil)}
	}
	byName := map[string]string{}
	for _, e := range current {
		byName[e.name] = e.hash
	}
	var changed []*part
	for i := range parts {
		if h, ok := byName[parts[i].name]; ok && h == parts[i].hash {
			s.Unchanged++
			continue
		}
		changed = append(changed, &parts[i])
	}
	if len(changed) > 0 {
		if previous == nil && len(current) > 0 {
			if previous, err = w.readAll(ctx, api, ns, current); err != nil {
				w.log.V(1).Info("Reading the current reports failed; results get new timestamps", "namespace", ns, "error", err.Error())
			}
		}
		stamps := make(map[uint64]metav1.Timestamp, len(previous))
		for i := range previous {
			stamps[hashResult(&previous[i])] = previous[i].Timestamp
		}
		now := metav1.Timestamp{Seconds: in.Start.Unix()}
		errs := s.Errors
		for _, p := range changed {
			_, ours := byName[p.name]
			w.apply(ctx, api, ns, p, p.results(in.Collector, stamps, now), ours, &s)
		}
		if s.Errors > errs {
			// The results of the reports beyond are in the ones not
			// written: they stay until a run writes those.
			w.log.Info("Keeping the namespace's extra reports, as a write failed", "namespace", ns)
			return s
		}
	}
	// Reports beyond the ones written: their results are in the others.
	wanted := map[string]bool{}
	for i := range parts {
		wanted[parts[i].name] = true
	}
	errs := s.Errors
	for _, e := range current {
		if !wanted[e.name] {
			w.delete(ctx, api, ns, e.name, &s)
		}
	}
	if s.Errors == errs && in.Kept == nil && len(results) > 0 {
		// entries are the run's results alone (no kind kept).
		w.remember(api, ns, entriesDigest(entries), len(entries), parts)
	}
	return s
}

// unchanged reports whether a namespace's reports already hold its
// results, counting them in s: when the results' digest is the one the
// reports were last left complete with, and the reports are still those
// (same names, same hashes). Reading the digest builds no result, so a
// run that changes nothing costs next to no memory.
func (w *Writer) unchanged(api API, in *Input, ns string, current []existing, s *Stats) bool {
	w.mu.Lock()
	last, ok := w.written[api.String()+"/"+ns]
	w.mu.Unlock()
	if !ok || len(current) != len(last.reports) {
		return false
	}
	for _, e := range current {
		if h, ok := last.reports[e.name]; !ok || h != e.hash {
			return false
		}
	}
	digest, n, err := w.digest(in, ns)
	if err != nil || digest != last.digest || n != last.results {
		return false
	}
	s.Reports, s.Results, s.Unchanged, s.Digested = len(current), n, len(current), 1
	return true
}

// remember records that a namespace's reports are parts, complete, made of
// results whose digest is digest.
func (w *Writer) remember(api API, ns string, digest uint64, n int, parts []part) {
	reports := make(map[string]string, len(parts))
	for i := range parts {
		reports[parts[i].name] = parts[i].hash
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.written[api.String()+"/"+ns] = writtenNS{digest: digest, results: n, reports: reports}
}

// digest is the digest of a namespace's results, read into a pooled
// buffer.
func (w *Writer) digest(in *Input, ns string) (uint64, int, error) {
	buf, _ := w.bufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	defer w.bufs.Put(buf)
	digest, n, data, err := in.Collector.digest(ns, *buf)
	*buf = data[:0]
	return digest, n, err
}

// keepOnly forgets every namespace but those of api in namespaces: such
// as namespaces deleted with their reports, and those of another API
// written before. (Forgetting is always safe: a namespace forgotten gets
// its reports built and compared.)
func (w *Writer) keepOnly(api API, namespaces []string) {
	keep := make(map[string]bool, len(namespaces))
	for _, ns := range namespaces {
		keep[api.String()+"/"+ns] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for key := range w.written {
		if !keep[key] {
			delete(w.written, key)
		}
	}
}

// forget drops what is remembered of a namespace's reports.
func (w *Writer) forget(api API, ns string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.written, api.String()+"/"+ns)
}

// readAll reads the results of a namespace's current reports.
func (w *Writer) readAll(ctx context.Context, api API, ns string, current []existing) ([]v1alpha2.PolicyReportResult, error) {
	var out []v1alpha2.PolicyReportResult
	for _, e := range current {
		body, err := w.rest.Get().AbsPath(api.path(ns, e.name)...).Do(ctx).Raw()
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s %s: %w", api.kind(ns), klog.KRef(ns, e.name), err)
		}
		var r v1alpha2.PolicyReport // every report kind has its results
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("decoding %s %s: %w", api.kind(ns), klog.KRef(ns, e.name), err)
		}
		out = append(out, r.Results...)
	}
	return out, nil
}

// fieldValidation is the writes' fieldValidation. The default, Warn,
// makes the API server parse each apply body a second time, strictly, to
// find unknown and duplicate fields: 14% of its CPU on these writes. The
// reports are encoded from the schema's own types (TestEncodeFitsSchema
// checks every field against the CRDs), so there is nothing to warn about.
const fieldValidation = "Ignore"

// apply writes one report with server-side apply. Conflicts are forced
// only on a report the audit owns (ours): a report of the same name that
// another tool wrote, without the audit's label, conflicts with the write,
// which is refused, and is left as it is.
func (w *Writer) apply(ctx context.Context, api API, ns string, p *part, results []v1alpha2.PolicyReportResult, ours bool, s *Stats) {
	labels := map[string]string{LabelManagedBy: ManagedBy}
	annotations := map[string]string{AnnotationHash: p.hash}
	body, err := api.encode(ns, p.name, labels, annotations, p.summary, results)
	if err == nil {
		// The API server answers with the report's metadata only, not the
		// whole report back.
		err = w.rest.Patch(types.ApplyPatchType).AbsPath(api.path(ns, p.name)...).
			Param("fieldManager", w.opts.FieldManager).Param("force", strconv.FormatBool(ours)).
			Param("fieldValidation", fieldValidation).SetHeader("Accept", metadataOnly).Body(body).Do(ctx).Error()
		if !ours && apierrors.IsConflict(err) {
			err = fmt.Errorf("a report that the audit does not own (without label %s=%s) has this name: %w", LabelManagedBy, ManagedBy, err)
		}
	}
	if err != nil {
		s.Errors++
		w.log.Error(err, "Writing a report failed", "kind", api.kind(ns), "report", klog.KRef(ns, p.name),
			"results", len(results), "bytes", len(body))
		return
	}
	s.Writes++
	s.Bytes += int64(len(body))
	w.log.V(1).Info("Wrote a report", "kind", api.kind(ns), "report", klog.KRef(ns, p.name), "results", len(results), "bytes", len(body))
}

// delete deletes one report; one already gone counts as deleted.
func (w *Writer) delete(ctx context.Context, api API, ns, name string, s *Stats) {
	err := w.rest.Delete().AbsPath(api.path(ns, name)...).Do(ctx).Error()
	if err != nil && !apierrors.IsNotFound(err) {
		s.Errors++
		w.log.Error(err, "Deleting a report failed", "kind", api.kind(ns), "report", klog.KRef(ns, name))
		return
	}
	s.Deletes++
	w.log.V(1).Info("Deleted a report", "kind", api.kind(ns), "report", klog.KRef(ns, name))
}
