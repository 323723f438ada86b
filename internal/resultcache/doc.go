// Package resultcache is the bounded memo that both policy drivers keep
// their constraint results in, keyed by a SHA-256 digest of everything a
// result depends on. What goes into a key is each driver's business
// (engine/regodriver's read sets, engine/celdriver's); this package only
// holds the entries, evicts the oldest past its size, and counts hits and
// misses for portcullis_result_cache_* metrics.
package resultcache
