package celdriver

import "testing"

// TestReadPathKeys: the keys that memoize a review's digests tell apart
// paths that read alike: a field name with a dot and two fields, and the
// tests of one path.
func TestReadPathKeys(t *testing.T) {
	paths := []readPath{
		{root: "object", segs: []string{"metadata", "labels", "a.b"}},
		{root: "object", segs: []string{"metadata", "labels", "a", "b"}},
		{root: "object", segs: []string{"metadata", "labels|1:a", "b"}},
		{root: "object", segs: []string{"metadata", "labels", "a"}, test: readHas},
		{root: "object", segs: []string{"metadata", "labels", "a"}, test: readNull},
		{root: "object", segs: []string{"metadata", "labels", "a"}},
		{root: "oldObject", segs: []string{"metadata", "labels", "a"}},
	}
	seen := map[string]readPath{}
	for _, p := range paths {
		k := p.key()
		if q, ok := seen[k]; ok {
			t.Errorf("%v and %v share the key %q", p, q, k)
		}
		seen[k] = p
	}
}
