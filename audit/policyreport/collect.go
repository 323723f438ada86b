package policyreport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/portcullis-dev/portcullis/api/wgpolicyk8s/v1alpha2"
)

// Policy is a constraint as its results name it.
type Policy struct {
	// Name is the results' policy: <constraint kind>/<constraint name>.
	Name string
	// Rule is the template's name.
	Rule string
	// Category and Severity are copied into each result; empty for none.
	Category string
	Severity v1alpha2.PolicyResultSeverity
}

// Kind is a kind of audited object.
type Kind struct {
	APIVersion string
	Kind       string
}

// Result is one result the audit found: a violation of a constraint by an
// object, or with pass results on, a constraint an object matched without
// violating it.
type Result struct {
	// Policy and Kind index the collector's policies and kinds.
	Policy int
	Kind   int
	// Namespace is the object's, "" for a cluster-scoped object.
	Namespace string
	Name      string
	UID       string
	Outcome   v1alpha2.PolicyResult
	Message   string
	// Action, when set, is recorded as properties.enforcementAction: for
	// outcomes that do not tell the enforcement action (dryrun, scoped).
	Action string
}

// MaxMessageBytes is the length a result's message is cut to (ending in
// "..."), so that any result fits in a report.
const MaxMessageBytes = 4096

// truncate cuts s to at most n bytes on a rune boundary, ending it with
// "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// bufferLimit is how many encoded bytes a Buffer holds before it hands
// them to the collector.
const bufferLimit = 64 << 10

// Collector holds the results of one audit run, grouped by namespace.
// Results are added through Buffers, one per goroutine.
type Collector struct {
	policies []Policy
	kinds    []Kind
	store    *store
	// dropped are the policies whose results are left out (Drop).
	dropped []bool
}

// CollectOptions configure a Collector.
type CollectOptions struct {
	// Dirs are the directories tried, in order, for the spill file; with
	// none writable, results are held in memory.
	Dirs []string
	// Budget is how many encoded bytes are held in memory before they are
	// spilled; 0 means DefaultBudget.
	Budget int
}

// DefaultBudget is the default CollectOptions.Budget.
const DefaultBudget = 4 << 20

// NewCollector starts collecting results for policies and kinds, which
// Results index. The error, when set, says why results are held in memory
// (no spill file could be created); the collector works anyway.
func NewCollector(policies []Policy, kinds []Kind, opts CollectOptions) (*Collector, error) {
	budget := opts.Budget
	if budget <= 0 {
		budget = DefaultBudget
	}
	s, err := newStore(opts.Dirs, budget)
	return &Collector{policies: policies, kinds: kinds, store: s, dropped: make([]bool, len(policies))}, err
}

// Drop leaves out the results of a policy, and those the reports hold for
// it: a constraint deleted during the run. Call it before the results are
// read, not concurrently with Write.
func (c *Collector) Drop(policy int) {
	if policy >= 0 && policy < len(c.dropped) {
		c.dropped[policy] = true
	}
}

// droppedName reports whether the policy named name was dropped.
func (c *Collector) droppedName(name string) bool {
	for i, d := range c.dropped {
		if d && c.policies[i].Name == name {
			return true
		}
	}
	return false
}

// Close releases the spill file.
func (c *Collector) Close() error { return c.store.close() }

// Err is the first error met spilling results: the collection is then
// incomplete.
func (c *Collector) Err() error { return c.store.failed() }

// Namespaces lists the namespaces with results, sorted; "" stands for
// cluster-scoped objects.
func (c *Collector) Namespaces() []string { return c.store.namespaces() }

// Spilled is how many bytes were written to the spill file.
func (c *Collector) Spilled() int64 { return c.store.spilled() }

// Results returns the results of a namespace, in the order they were added
// by each buffer.
func (c *Collector) Results(ns string) ([]Result, error) {
	data, err := c.store.read(ns)
	if err != nil {
		return nil, err
	}
	var out []Result
	str := string(data)
	for at := 0; at < len(data); {
		var r Result
		if at, err = c.decodeResult(data, str, at, &r); err != nil {
			return nil, fmt.Errorf("reading the results of namespace %q: %w", ns, err)
		}
		if c.dropped[r.Policy] {
			continue
		}
		r.Namespace = ns
		out = append(out, r)
	}
	return out, nil
}

// NewBuffer returns a buffer that adds results to c; it is not safe for
// concurrent use. Flush it when done.
func (c *Collector) NewBuffer() *Buffer {
	return &Buffer{c: c, byNS: map[string][]byte{}}
}

// Buffer batches one goroutine's results so that the collector's lock is
// taken once per bufferLimit bytes, not once per result.
type Buffer struct {
	c    *Collector
	byNS map[string][]byte
	size int
}

// Add adds a result, its message cut to MaxMessageBytes.
func (b *Buffer) Add(r *Result) {
	if len(r.Message) > MaxMessageBytes {
		cut := *r
		cut.Message = truncate(r.Message, MaxMessageBytes)
		r = &cut
	}
	old := b.byNS[r.Namespace]
	data := appendResult(old, r)
	b.byNS[r.Namespace] = data
	b.size += len(data) - len(old)
	if b.size >= bufferLimit {
		b.Flush()
	}
}

// Flush hands the buffered results to the collector.
func (b *Buffer) Flush() {
	if b.size == 0 {
		return
	}
	b.c.store.append(b.byNS)
	clear(b.byNS)
	b.size = 0
}

var errCorrupt = errors.New("corrupt result record")

// outcomes are the result codes of the encoding.
var outcomes = []v1alpha2.PolicyResult{v1alpha2.ResultPass, v1alpha2.ResultFail, v1alpha2.ResultWarn, v1alpha2.ResultError, v1alpha2.ResultSkip}

// appendResult encodes r (without its namespace, which groups it): policy
// and kind indexes as uvarints, the outcome as a byte, then name, UID,
// message and action, each a uvarint length and its bytes.
func appendResult(b []byte, r *Result) []byte {
	b = binary.AppendUvarint(b, uint64(r.Policy))
	b = binary.AppendUvarint(b, uint64(r.Kind))
	code := slices.Index(outcomes, r.Outcome)
	if code < 0 {
		code = slices.Index(outcomes, v1alpha2.ResultError)
	}
	b = append(b, byte(code))
	for _, s := range [...]string{r.Name, r.UID, r.Message, r.Action} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

// record is one record of appendResult as it lies in the encoded data:
// its indexes and outcome, and where its strings are (name, UID, message,
// action), as [start, end) offsets.
type record struct {
	policy, kind int
	outcome      v1alpha2.PolicyResult
	fields       [4][2]int
}

// decodeRecord decodes the record of appendResult at data[at:], checking
// its indexes against c, and returns where the next begins.
func (c *Collector) decodeRecord(data []byte, at int, r *record) (int, error) {
	uvarint := func() (uint64, error) {
		v, n := binary.Uvarint(data[at:])
		if n <= 0 {
			return 0, errCorrupt
		}
		at += n
		return v, nil
	}
	p, err := uvarint()
	if err != nil {
		return 0, err
	}
	k, err := uvarint()
	if err != nil || at >= len(data) {
		return 0, errCorrupt
	}
	code := int(data[at])
	if code >= len(outcomes) || p >= uint64(len(c.policies)) || k >= uint64(len(c.kinds)) {
		return 0, errCorrupt
	}
	at++
	r.policy, r.kind, r.outcome = int(p), int(k), outcomes[code]
	for i := range r.fields {
		l, err := uvarint()
		if err != nil || uint64(len(data)-at) < l {
			return 0, errCorrupt
		}
		r.fields[i] = [2]int{at, at + int(l)}
		at += int(l)
	}
	return at, nil
}

// decodeResult decodes the record at data[at:] into r and returns where
// the next begins. Its strings are substrings of str, which holds the
// same bytes as data: one allocation for all the results of a namespace
// rather than four per result.
func (c *Collector) decodeResult(data []byte, str string, at int, r *Result) (int, error) {
	var rec record
	next, err := c.decodeRecord(data, at, &rec)
	if err != nil {
		return 0, err
	}
	r.Policy, r.Kind, r.Outcome = rec.policy, rec.kind, rec.outcome
	for i, dst := range [...]*string{&r.Name, &r.UID, &r.Message, &r.Action} {
		*dst = str[rec.fields[i][0]:rec.fields[i][1]]
	}
	return next, nil
}

// digest is a digest of a namespace's results whatever their order, and
// how many there are, read without building them: buf (which it returns,
// grown, for the next call) receives the encoded results. Two runs whose
// results have the same digest make the same reports.
func (c *Collector) digest(ns string, buf []byte) (uint64, int, []byte, error) {
	data, err := c.store.readInto(ns, buf[:0])
	if err != nil {
		return 0, 0, buf, err
	}
	var (
		sum uint64
		n   int
		rec record
	)
	field := func(i int) []byte { return data[rec.fields[i][0]:rec.fields[i][1]] }
	for at := 0; at < len(data); {
		if at, err = c.decodeRecord(data, at, &rec); err != nil {
			return 0, 0, data, fmt.Errorf("reading the results of namespace %q: %w", ns, err)
		}
		if c.dropped[rec.policy] {
			continue
		}
		n++
		// A sum of mixed hashes: the same whatever the order, and
		// duplicates count.
		sum += mix64(hashFields(c, rec.policy, rec.kind, rec.outcome, ns, field(0), field(1), field(2), field(3)))
	}
	return sealDigest(sum, n), n, data, nil
}

// sealDigest is the digest of n results whose mixed hashes sum to sum.
func sealDigest(sum uint64, n int) uint64 { return mix64(sum ^ uint64(n)) }

// entriesDigest is digest's value for the results of entries, which
// hold their hashes already.
func entriesDigest(es []entry) uint64 {
	var sum uint64
	for i := range es {
		sum += mix64(es[i].hash)
	}
	return sealDigest(sum, len(es))
}

// mix64 is splitmix64's finalizer: every input bit affects every output
// bit, so that sums of mixed hashes do not cancel out.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
