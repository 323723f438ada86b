package regodriver

import "strings"

// Reads reports what the compiled template of kind for target reads, as
// the result cache keys it: whether its results are cached, whether it
// reads the data store, and the parts of input.review it reads, as
// dotted paths.
func Reads(d *Driver, target, kind string) (cacheable, readsData bool, paths []string, why string, ok bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ts := d.targets[target]
	if ts == nil || ts.programs[kind] == nil {
		return false, false, nil, "", false
	}
	r := ts.programs[kind].reads
	for _, k := range r.keys {
		paths = append(paths, strings.ReplaceAll(k, "\x00", "."))
	}
	return r.cacheable, r.readsData, paths, r.why, true
}

// ForgetReads makes the result cache key kind's results by the constraint
// alone, as a broken analysis would: for tests that must catch it.
func ForgetReads(d *Driver, target, kind string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ts := d.targets[target]
	if ts == nil || ts.programs[kind] == nil {
		return false
	}
	p := *ts.programs[kind]
	p.reads = readSet{cacheable: true}
	ts.programs[kind] = &p
	return true
}
