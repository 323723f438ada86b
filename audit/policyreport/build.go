package policyreport

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
)

// Source is every result's source.
const Source = "portcullis"

// PropertyEnforcementAction is the property that records a result's
// enforcement action where its outcome does not tell it.
const PropertyEnforcementAction = "enforcementAction"

// DefaultMaxResults bounds the results of one report: a namespace with
// more gets numbered reports.
const DefaultMaxResults = 1000

// MaxReportBytes bounds the estimated size of one report's results, well
// below etcd's default limit of 1.5 MiB per object: a namespace whose
// results are larger gets numbered reports.
const MaxReportBytes = 1 << 20

// resultOverhead is the JSON of a result beyond its strings: keys,
// quotes, the timestamp and the summary's share.
const resultOverhead = 200

// hashVersion changes when the content of reports changes for the same
// results, so that every report is rewritten once.
const hashVersion = "1"

// entry is a result ready for a report: collected by this run (new), or
// kept from the current reports (old), with the hash of everything in it
// but its timestamp and an estimate of its size. Entries stay compact
// (a namespace's entries are held while its reports are built); a
// PolicyReportResult is built from one only when its report is encoded.
type entry struct {
	new  *Result
	old  *v1alpha2.PolicyReportResult
	hash uint64
	size int
}

// newEntry makes an entry of a collected result.
func (c *Collector) newEntry(r *Result) entry {
	return entry{new: r, hash: c.hashCollected(r), size: c.estimateCollected(r)}
}

// oldEntry makes an entry of a result kept from a report.
func oldEntry(r *v1alpha2.PolicyReportResult) entry {
	return entry{old: r, hash: hashResult(r), size: estimate(r)}
}

// result builds the report result of a collected one.
func (c *Collector) result(r *Result) v1alpha2.PolicyReportResult {
	p, k := &c.policies[r.Policy], &c.kinds[r.Kind]
	out := v1alpha2.PolicyReportResult{
		Source:      Source,
		Policy:      p.Name,
		Rule:        p.Rule,
		Category:    p.Category,
		Severity:    p.Severity,
		Result:      r.Outcome,
		Description: r.Message,
		Subjects: []corev1.ObjectReference{{
			APIVersion: k.APIVersion, Kind: k.Kind, Namespace: r.Namespace, Name: r.Name, UID: types.UID(r.UID),
		}},
	}
	if r.Action != "" {
		out.Properties = map[string]string{PropertyEnforcementAction: r.Action}
	}
	return out
}

// estimate is about the size of a result's JSON.
func estimate(r *v1alpha2.PolicyReportResult) int {
	n := resultOverhead + len(r.Source) + len(r.Policy) + len(r.Rule) + len(r.Category) + len(r.Severity) +
		len(r.Result) + len(r.Description)
	for i := range r.Subjects {
		s := &r.Subjects[i]
		n += len(s.APIVersion) + len(s.Kind) + len(s.Namespace) + len(s.Name) + len(s.UID) + 60
	}
	for k, v := range r.Properties {
		n += len(k) + len(v) + 6
	}
	return n
}

// sortKey are the fields entries are sorted by.
type sortKey struct {
	policy, apiVersion, kind, name string
	result                         v1alpha2.PolicyResult
	message                        string
}

func (c *Collector) sortKey(e *entry) sortKey {
	if e.new != nil {
		k := &c.kinds[e.new.Kind]
		return sortKey{c.policies[e.new.Policy].Name, k.APIVersion, k.Kind, e.new.Name, e.new.Outcome, e.new.Message}
	}
	k := sortKey{policy: e.old.Policy, result: e.old.Result, message: e.old.Description}
	if len(e.old.Subjects) > 0 {
		s := &e.old.Subjects[0]
		k.apiVersion, k.kind, k.name = s.APIVersion, s.Kind, s.Name
	}
	return k
}

// subjectKey is a result's policy and object, its version aside.
type subjectKey struct{ policy, group, kind, name string }

// subjectKey is the policy and object of an entry.
func (c *Collector) subjectKey(e *entry) subjectKey {
	k := c.sortKey(e)
	gv, _ := schema.ParseGroupVersion(k.apiVersion) // on error, group "": the key still holds the kind and name
	return subjectKey{policy: k.policy, group: gv.Group, kind: k.kind, name: k.name}
}

// outcome is an entry's result.
func (e *entry) outcome() v1alpha2.PolicyResult {
	if e.new != nil {
		return e.new.Outcome
	}
	return e.old.Result
}

// fnv64a is FNV-1a over length-prefixed strings, without allocating.
type fnv64a uint64

const (
	fnvOffset fnv64a = 14695981039346656037
	fnvPrime  fnv64a = 1099511628211
)

func (h *fnv64a) write(s string) { fnvWrite(h, s) }

// fnvWrite writes a length-prefixed string, or the same bytes.
func fnvWrite[T ~string | ~[]byte](h *fnv64a, s T) {
	var n [binary.MaxVarintLen64]byte
	for _, b := range n[:binary.PutUvarint(n[:], uint64(len(s)))] {
		*h = (*h ^ fnv64a(b)) * fnvPrime
	}
	for i := 0; i < len(s); i++ {
		*h = (*h ^ fnv64a(s[i])) * fnvPrime
	}
}

// hashResult hashes every field of a result but its timestamp.
func hashResult(r *v1alpha2.PolicyReportResult) uint64 {
	h := fnvOffset
	for _, f := range [...]string{r.Source, r.Policy, r.Rule, r.Category, string(r.Severity), string(r.Result),
		strconv.FormatBool(r.Scored), r.Description} {
		h.write(f)
	}
	for i := range r.Subjects {
		s := &r.Subjects[i]
		for _, f := range [...]string{s.APIVersion, s.Kind, s.Namespace, s.Name, string(s.UID), s.FieldPath, s.ResourceVersion} {
			h.write(f)
		}
	}
	if r.SubjectSelector != nil {
		h.write(r.SubjectSelector.String())
	}
	keys := make([]string, 0, len(r.Properties))
	for k := range r.Properties {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		h.write(k)
		h.write(r.Properties[k])
	}
	return uint64(h)
}

// hashCollected is hashResult(c.result(r)), without building the result.
func (c *Collector) hashCollected(r *Result) uint64 {
	return hashFields(c, r.Policy, r.Kind, r.Outcome, r.Namespace, r.Name, r.UID, r.Message, r.Action)
}

// hashFields is hashCollected of a result given by its fields, the last
// four as strings or as bytes (as encoded in the store).
func hashFields[T ~string | ~[]byte](c *Collector, policy, kind int, outcome v1alpha2.PolicyResult, namespace string,
	name, uid, message, action T) uint64 {
	p, k := &c.policies[policy], &c.kinds[kind]
	h := fnvOffset
	for _, f := range [...]string{Source, p.Name, p.Rule, p.Category, string(p.Severity), string(outcome), strconv.FormatBool(false)} {
		h.write(f)
	}
	fnvWrite(&h, message)
	for _, f := range [...]string{k.APIVersion, k.Kind, namespace} {
		h.write(f)
	}
	fnvWrite(&h, name)
	fnvWrite(&h, uid)
	h.write("")
	h.write("")
	if len(action) > 0 {
		h.write(PropertyEnforcementAction)
		fnvWrite(&h, action)
	}
	return uint64(h)
}

// estimateCollected is estimate(c.result(r)), without building the result.
func (c *Collector) estimateCollected(r *Result) int {
	p, k := &c.policies[r.Policy], &c.kinds[r.Kind]
	n := resultOverhead + len(Source) + len(p.Name) + len(p.Rule) + len(p.Category) + len(p.Severity) + len(r.Outcome) +
		len(r.Message) + len(k.APIVersion) + len(k.Kind) + len(r.Namespace) + len(r.Name) + len(r.UID) + 60
	if r.Action != "" {
		n += len(PropertyEnforcementAction) + len(r.Action) + 6
	}
	return n
}

// sortEntries orders results by policy, resource (apiVersion, kind,
// name), outcome and message, so that the same results make the same
// reports.
func (c *Collector) sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int {
		ka, kb := c.sortKey(&a), c.sortKey(&b)
		return cmp.Or(
			cmp.Compare(ka.policy, kb.policy),
			cmp.Compare(ka.apiVersion, kb.apiVersion), cmp.Compare(ka.kind, kb.kind), cmp.Compare(ka.name, kb.name),
			cmp.Compare(ka.result, kb.result),
			cmp.Compare(ka.message, kb.message),
			cmp.Compare(a.hash, b.hash),
		)
	})
}

// part is one report of a namespace.
type part struct {
	name    string
	entries []entry
	summary v1alpha2.PolicyReportSummary
	hash    string
}

// ReportName is the name of a namespace's report, and of the
// ClusterPolicyReport; numbered reports follow it as <ReportName>-2, -3...
const ReportName = "portcullis-audit"

// partName names the i-th report (from 0) of a namespace.
func partName(i int) string {
	if i == 0 {
		return ReportName
	}
	return ReportName + "-" + strconv.Itoa(i+1)
}

// split cuts sorted results into reports of at most maxResults results
// and about MaxReportBytes each. No results make no reports.
func split(es []entry, maxResults int) []part {
	var (
		out   []part
		start int
		bytes int
	)
	for i := range es {
		if i > start && (i-start >= maxResults || bytes+es[i].size > MaxReportBytes) {
			out = append(out, newPart(len(out), es[start:i]))
			start, bytes = i, 0
		}
		bytes += es[i].size
	}
	if start < len(es) {
		out = append(out, newPart(len(out), es[start:]))
	}
	return out
}

func newPart(i int, es []entry) part {
	p := part{name: partName(i), entries: es}
	h := fnvOffset
	h.write(hashVersion)
	for j := range es {
		for v, k := es[j].hash, 0; k < 8; v, k = v>>8, k+1 {
			h = (h ^ fnv64a(v&0xff)) * fnvPrime
		}
		switch es[j].outcome() {
		case v1alpha2.ResultPass:
			p.summary.Pass++
		case v1alpha2.ResultFail:
			p.summary.Fail++
		case v1alpha2.ResultWarn:
			p.summary.Warn++
		case v1alpha2.ResultError:
			p.summary.Error++
		case v1alpha2.ResultSkip:
			p.summary.Skip++
		}
	}
	p.hash = strconv.FormatUint(uint64(h), 16)
	return p
}

// emptyHash is the hash of a report without results.
var emptyHash = newPart(0, nil).hash

// results returns the part's results, each with the timestamp it had in
// the report it comes from (by the hash of the rest of it), else now.
func (p *part) results(c *Collector, previous map[uint64]metav1.Timestamp, now metav1.Timestamp) []v1alpha2.PolicyReportResult {
	if len(p.entries) == 0 {
		return nil
	}
	out := make([]v1alpha2.PolicyReportResult, len(p.entries))
	for i := range p.entries {
		if e := &p.entries[i]; e.new != nil {
			out[i] = c.result(e.new)
		} else {
			out[i] = *e.old
		}
		if ts, ok := previous[p.entries[i].hash]; ok {
			out[i].Timestamp = ts
		} else {
			out[i].Timestamp = now
		}
	}
	return out
}
