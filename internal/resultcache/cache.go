package resultcache

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
)

// Key is what an entry is found by: a SHA-256 digest.
type Key = [sha256.Size]byte

// Cache holds values by key, evicting the oldest entry once it holds
// max. A nil *Cache is a cache that is off: it holds nothing.
type Cache[V any] struct {
	max          int
	mu           sync.Mutex
	entries      map[Key]V
	ring         []Key
	next         int
	hits, misses atomic.Uint64
}

// New returns a cache of at most maxEntries values; nil (off) for 0 or
// less.
func New[V any](maxEntries int) *Cache[V] {
	if maxEntries <= 0 {
		return nil
	}
	return &Cache[V]{max: maxEntries, entries: make(map[Key]V, min(maxEntries, 1024))}
}

// Get returns the value held for k, and counts a hit or a miss.
func (c *Cache[V]) Get(k Key) (V, bool) {
	if c == nil {
		var zero V
		return zero, false
	}
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

// Put holds v for k, unless k already has a value.
func (c *Cache[V]) Put(k Key, v V) {
	if c == nil {
		return
	}
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

// Stats are a cache's counters since it was made.
type Stats struct {
	Hits, Misses uint64
	Entries      int
}

// Add is the counters of two caches together.
func (s Stats) Add(o Stats) Stats {
	return Stats{Hits: s.Hits + o.Hits, Misses: s.Misses + o.Misses, Entries: s.Entries + o.Entries}
}

// Stats returns the cache's counters; zero when it is off.
func (c *Cache[V]) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	c.mu.Lock()
	n := len(c.entries)
	c.mu.Unlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: n}
}
