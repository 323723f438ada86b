package regodriver

import "github.com/portcullis-dev/portcullis/internal/resultcache"

// The result cache memoizes a constraint's violations by what its
// template can read. Each compiled template is analyzed once: which parts
// of input.review its Rego refers to (the longest constant prefix of every
// reference to input), whether it reads the data store (data.inventory),
// and whether it can be memoized at all: not when it uses `with`, a
// nondeterministic builtin (time.now_ns, http.send, rand.intn, ...) or the
// whole review. A result is then keyed by the template's compilation, the
// constraint's parameters, the data store's generation if the template
// reads it, and a SHA-256 digest of each part of the review it reads.
// Equal keys mean the evaluation saw equal inputs, so it would give the
// same result: a Deployment's pods, or an object re-applied unchanged,
// are judged once per template.

// CacheStats are the result cache's counters since the driver started.
type CacheStats = resultcache.Stats

// CacheStats returns the result cache's counters; zero if it is off.
func (d *Driver) CacheStats() CacheStats { return d.cache.Stats() }
