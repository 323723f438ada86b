package regodriver

import (
	"sync"
	"sync/atomic"
)

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

// resultCache holds outcomes by key, evicting the oldest entry once it
// holds max. A max of 0 turns it off.
type resultCache struct {
	max          int
	mu           sync.Mutex
	entries      map[digest]*outcome
	ring         []digest
	next         int
	hits, misses atomic.Uint64
}

func newResultCache(maxEntries int) *resultCache {
	if maxEntries <= 0 {
		return nil
	}
	return &resultCache{max: maxEntries, entries: make(map[digest]*outcome, min(maxEntries, 1024))}
}

func (c *resultCache) get(k digest) (*outcome, bool) {
	c.mu.Lock()
	v, ok := c.entries[k]
	c.mu.Unlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return v, ok
}

func (c *resultCache) put(k digest, v *outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		return
	}
	if len(c.ring) < c.max {
		c.ring = append(c.ring, k)
	} else {
		delete(c.entries, c.ring[c.next])
		c.ring[c.next] = k
		c.next = (c.next + 1) % c.max
	}
	c.entries[k] = v
}

// CacheStats are the result cache's counters since the driver started.
type CacheStats struct {
	Hits, Misses uint64
	Entries      int
}

// CacheStats returns the result cache's counters; zero if it is off.
func (d *Driver) CacheStats() CacheStats {
	c := d.cache
	if c == nil {
		return CacheStats{}
	}
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: n}
}
