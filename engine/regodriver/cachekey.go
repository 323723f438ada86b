package regodriver

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/portcullis-dev/portcullis/internal/resultcache"
)

// The result cache's key: the digests of the parts of a review a
// template reads (see readset.go), with the template's compilation, the
// constraint's parameters and the data store's generation.

type digest = resultcache.Key

// reviewDigests computes, once per Query, the digest of each part of the
// review that templates read.
type reviewDigests struct {
	review ast.Value
	mu     sync.Mutex
	memo   map[string]digest
}

func newReviewDigests(review ast.Value) *reviewDigests {
	return &reviewDigests{review: review, memo: make(map[string]digest, 32)}
}

func (r *reviewDigests) get(key string, path []*ast.Term) digest {
	r.mu.Lock()
	d, ok := r.memo[key]
	r.mu.Unlock()
	if ok {
		return d
	}
	buf := encodePool.Get().(*[]byte)
	b := encodePath((*buf)[:0], r.review, path)
	d = sha256.Sum256(b)
	*buf = b
	encodePool.Put(buf)
	r.mu.Lock()
	r.memo[key] = d
	r.mu.Unlock()
	return d
}

// encodePath appends the encoding of the value at path below v or, if
// there is none, of how far the path goes: a variable bound to
// input.review.object.spec is defined when spec exists but has no
// containers, and undefined when there is no spec, and the two must not
// share a key.
func encodePath(b []byte, v ast.Value, path []*ast.Term) []byte {
	for depth, seg := range path {
		obj, ok := v.(ast.Object)
		var t *ast.Term
		if ok {
			t = obj.Get(seg)
		}
		if t == nil {
			b = append(b, 'u')
			return binary.AppendUvarint(b, uint64(depth))
		}
		v = t.Value
	}
	return encodeValue(b, v)
}

var encodePool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// encodeValue appends an unambiguous encoding of v: a type tag, then
// lengths before contents, objects in sorted key order and sets in sorted
// order, so that equal encodings are equal values.
func encodeValue(b []byte, v ast.Value) []byte {
	switch x := v.(type) {
	case ast.Null:
		return append(b, 'n')
	case ast.Boolean:
		if x {
			return append(b, 't')
		}
		return append(b, 'f')
	case ast.Number:
		b = append(b, 'd')
		return appendString(b, string(x))
	case ast.String:
		b = append(b, 's')
		return appendString(b, string(x))
	case *ast.Array:
		b = append(b, 'a')
		b = binary.AppendUvarint(b, uint64(x.Len()))
		for i := 0; i < x.Len(); i++ {
			b = encodeValue(b, x.Elem(i).Value)
		}
		return b
	case ast.Object:
		b = append(b, 'o')
		b = binary.AppendUvarint(b, uint64(x.Len()))
		it := x.KeysIterator()
		for k, ok := it.Next(); ok; k, ok = it.Next() {
			b = encodeValue(b, k.Value)
			b = encodeValue(b, x.Get(k).Value)
		}
		return b
	case ast.Set:
		b = append(b, 'e')
		b = binary.AppendUvarint(b, uint64(x.Len()))
		for _, t := range x.Slice() {
			b = encodeValue(b, t.Value)
		}
		return b
	default:
		// Input never holds anything else (it is JSON); refs, vars and
		// comprehensions are encoded by their text.
		b = append(b, '?')
		return appendString(b, x.String())
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// resultKey is the cache key of one constraint's evaluation.
func resultKey(p *program, paramsID, dataGen uint64, digests *reviewDigests) digest {
	var buf [8 * 4]byte
	h := sha256.New()
	binary.LittleEndian.PutUint64(buf[0:], p.id)
	binary.LittleEndian.PutUint64(buf[8:], paramsID)
	if p.reads.readsData {
		binary.LittleEndian.PutUint64(buf[16:], dataGen)
	} else {
		binary.LittleEndian.PutUint64(buf[16:], math.MaxUint64)
	}
	binary.LittleEndian.PutUint64(buf[24:], uint64(len(p.reads.paths)))
	h.Write(buf[:])
	for i, path := range p.reads.paths {
		d := digests.get(p.reads.keys[i], path)
		h.Write(d[:])
	}
	var out digest
	h.Sum(out[:0])
	return out
}
