package celdriver

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	admissioncel "k8s.io/apiserver/pkg/admission/plugin/cel"

	"github.com/portcullis-dev/portcullis/internal/resultcache"
)

// The result cache's key: the template's compilation and an encoding of
// every value its read set names (see readset.go), params included, so
// that equal keys mean the expressions saw equal values.

// compilations numbers compiled templates: a template compiled again
// never shares results with the one it replaces.
var compilations atomic.Uint64

// resultKey is the key of a constraint's results in a review; ok is false
// when the template is not cached. The digest of each value of the review
// is computed once per review, for all the templates that read it.
func (c *compiled) resultKey(in *reviewVars, params map[string]any) (resultcache.Key, bool) {
	if !c.reads.cacheable {
		return resultcache.Key{}, false
	}
	buf := encodePool.Get().(*[]byte)
	b := binary.AppendUvarint((*buf)[:0], c.id)
	for i, p := range c.reads.paths {
		if p.root == admissioncel.ParamsVarName {
			b = encodePath(b, params, p)
			continue
		}
		d := in.digest(c.reads.keys[i], p)
		b = append(b, d[:]...)
	}
	k := sha256.Sum256(b)
	*buf = b
	encodePool.Put(buf)
	return k, true
}

// digest is the digest of what p reads of the review, memoized by its key.
func (in *reviewVars) digest(key string, p readPath) resultcache.Key {
	if d, ok := in.digests[key]; ok {
		return d
	}
	var v any
	switch p.root {
	case admissioncel.ObjectVarName:
		v = in.object
	case admissioncel.OldObjectVarName:
		v = in.oldObject
	case admissioncel.RequestVarName:
		v = in.request
	case admissioncel.NamespaceVarName:
		v = in.namespace
	}
	buf := encodePool.Get().(*[]byte)
	b := encodePath((*buf)[:0], v, p)
	d := sha256.Sum256(b)
	*buf = b
	encodePool.Put(buf)
	if in.digests == nil {
		in.digests = make(map[string]resultcache.Key, 16)
	}
	in.digests[key] = d
	return d
}

var encodePool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// encodePath appends the encoding of the value at p below v, or of how
// far p goes when there is none: has() tells the two apart.
func encodePath(b []byte, v any, p readPath) []byte {
	for depth, seg := range p.segs {
		m, ok := v.(map[string]any)
		if !ok {
			// Selecting into a value that is no map: an error, or null.
			b = append(b, 'x')
			b = binary.AppendUvarint(b, uint64(depth))
			return encodeValue(b, v)
		}
		if v, ok = m[seg]; !ok {
			b = append(b, 'u')
			return binary.AppendUvarint(b, uint64(depth))
		}
	}
	switch p.test {
	case readNull:
		if v == nil {
			return append(b, 'N')
		}
		// Comparing with null costs a unit more for a value of some size
		// than for an empty one (cel-go's cost of ==: the smaller size).
		if isEmpty(v) {
			return append(b, 'E')
		}
		return append(b, 'V')
	case readHas:
		// There: the walk found it.
		return append(b, 'P')
	}
	return encodeValue(b, v)
}

// isEmpty is whether v is a string, list or map of size zero.
func isEmpty(v any) bool {
	switch r := reflect.ValueOf(v); r.Kind() {
	case reflect.String, reflect.Slice, reflect.Array, reflect.Map:
		return r.Len() == 0
	}
	return false
}

// encodeValue appends an unambiguous encoding of an unstructured value: a
// type tag, then lengths before contents, map keys in sorted order.
func encodeValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'n')
	case bool:
		if x {
			return append(b, 't')
		}
		return append(b, 'f')
	case string:
		b = append(b, 's')
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case int64:
		b = append(b, 'i')
		return binary.AppendVarint(b, x)
	case int:
		b = append(b, 'i')
		return binary.AppendVarint(b, int64(x))
	case int32:
		b = append(b, 'i')
		return binary.AppendVarint(b, int64(x))
	case float64:
		b = append(b, 'd')
		return binary.BigEndian.AppendUint64(b, math.Float64bits(x))
	case []any:
		b = append(b, 'l')
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, e := range x {
			b = encodeValue(b, e)
		}
		return b
	case map[string]any:
		b = append(b, 'm')
		b = binary.AppendUvarint(b, uint64(len(x)))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = encodeValue(b, x[k])
		}
		return b
	}
	// Anything else an unstructured value holds (none is expected): its
	// type and Go syntax.
	s := fmt.Sprintf("%T %#v", v, v)
	b = append(b, '?')
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
