package regodriver

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// DecodedReview is a review that holds its object and oldObject already
// decoded from JSON (as encoding/json or sigs.k8s.io/json decode into
// map[string]any: int64 or float64 numbers). Query converts those
// directly to AST, which is what decoding the review's JSON would give:
// ReviewWithoutObjects must marshal to that JSON with object and
// oldObject null, and DecodedObjects return them (nil for null).
type DecodedReview interface {
	ReviewWithoutObjects() any
	DecodedObjects() (object, oldObject map[string]any)
}

type objectField struct {
	key   *ast.Term
	value map[string]any
}

var (
	objectKey          = ast.StringTerm("object")
	oldObjectKey       = ast.StringTerm("oldObject")
	reviewKey          = ast.StringTerm("review")
	parametersKey      = ast.StringTerm("parameters")
	namespaceObjectKey = ast.StringTerm("namespaceObject")
)

// reviewTerm converts a review to the AST value templates see as
// input.review, with namespaceObject added. The review goes through JSON
// once; the value is what json.Unmarshal into a map followed by
// ast.InterfaceToValue gives (as with the frameworks driver), numbers
// included: they are float64s, so 1000000 prints as 1e+06.
func reviewTerm(review any, namespace map[string]any) (*ast.Term, error) {
	var objects []objectField
	if dr, ok := review.(DecodedReview); ok {
		// Only the small rest of the review goes through JSON; the
		// objects, already decoded, are converted directly.
		object, oldObject := dr.DecodedObjects()
		objects = []objectField{{objectKey, object}, {oldObjectKey, oldObject}}
		review = dr.ReviewWithoutObjects()
	}
	raw, err := json.Marshal(review)
	if err != nil {
		return nil, fmt.Errorf("encoding review: %w", err)
	}
	ns, err := ast.InterfaceToValue(namespace)
	if err != nil {
		return nil, fmt.Errorf("converting namespace: %w", err)
	}
	if v, ok := decodeObject(raw); ok {
		for _, f := range objects {
			ov, err := decodedToValue(f.value)
			if err != nil {
				return nil, fmt.Errorf("converting review.%s: %w", f.key.Value, err)
			}
			v.Insert(f.key, ast.NewTerm(ov))
		}
		v.Insert(namespaceObjectKey, ast.NewTerm(ns))
		return ast.NewTerm(v), nil
	}
	if objects != nil {
		// The rest of a decoded review is plain JSON; the fast decoder
		// only leaves odd strings to encoding/json. Take the slow path
		// for the whole review.
		m := map[string]any{}
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("decoding review: %w", err)
		}
		for _, f := range objects {
			m[string(f.key.Value.(ast.String))] = f.value // a nil map encodes as null
		}
		raw, err = json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encoding review: %w", err)
		}
	}
	// Not a plain JSON object, or something the fast decoder leaves to
	// encoding/json: decode as the frameworks driver does, errors included.
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decoding review: %w", err)
	}
	if m == nil {
		// A null review; the frameworks driver would panic here.
		m = map[string]any{}
	}
	m["namespaceObject"] = namespace
	v, err := ast.InterfaceToValue(m)
	if err != nil {
		return nil, fmt.Errorf("converting review: %w", err)
	}
	return ast.NewTerm(v), nil
}

// templateInput is input for one constraint: {review, parameters}.
func templateInput(review, params *ast.Term) ast.Value {
	return ast.NewObject(ast.Item(reviewKey, review), ast.Item(parametersKey, params))
}

// decodedToValue converts decoded JSON to AST as the JSON decoder below
// would: numbers as float64s (an int64 too: 1000000 is 1e+06, as
// encoding/json then ast.InterfaceToValue make it), object keys in sorted
// order. A nil map is null.
func decodedToValue(m map[string]any) (ast.Value, error) {
	if m == nil {
		return ast.NullValue, nil
	}
	return decodedValue(m)
}

func decodedValue(x any) (ast.Value, error) {
	switch v := x.(type) {
	case nil:
		return ast.NullValue, nil
	case bool:
		return ast.Boolean(v), nil
	case string:
		return ast.String(v), nil
	case int64:
		return floatNumber(float64(v)), nil
	case float64:
		return floatNumber(v), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		items := make([][2]*ast.Term, len(keys))
		for i, k := range keys {
			ev, err := decodedValue(v[k])
			if err != nil {
				return nil, err
			}
			items[i] = [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(ev)}
		}
		return ast.NewObject(items...), nil
	case []any:
		terms := make([]*ast.Term, len(v))
		for i, e := range v {
			ev, err := decodedValue(e)
			if err != nil {
				return nil, err
			}
			terms[i] = ast.NewTerm(ev)
		}
		return ast.NewArray(terms...), nil
	}
	// Not what a JSON decoder makes (e.g. an int from Go code): as
	// encoding/json would round-trip it.
	b, err := json.Marshal(x)
	if err != nil {
		return nil, err
	}
	var back any
	if err := json.Unmarshal(b, &back); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(back)
}

// floatNumber is a float64 as ast.InterfaceToValue makes it.
func floatNumber(f float64) ast.Value {
	return ast.Number(strconv.FormatFloat(f, 'g', -1, 64))
}

// errSlowPath makes decodeObject give up, leaving the input to
// encoding/json.
var errSlowPath = errors.New("not for the fast decoder")

// decodeObject decodes a JSON object, as produced by json.Marshal,
// straight to AST. It gives up (ok is false) on anything not a JSON
// object and on any value whose decoding it does not reproduce exactly
// (e.g. numbers out of float64 range), rather than erring.
func decodeObject(data []byte) (obj ast.Object, ok bool) {
	d := &jsonDecoder{data: data}
	d.space()
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return nil, false
	}
	v, err := d.value()
	if err != nil {
		return nil, false
	}
	d.space()
	if d.pos != len(d.data) {
		return nil, false
	}
	return v.(ast.Object), true
}

type jsonDecoder struct {
	data []byte
	pos  int
}

func (d *jsonDecoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value() (ast.Value, error) {
	d.space()
	if d.pos >= len(d.data) {
		return nil, errSlowPath
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return ast.String(s), nil
	case c == 't':
		return d.literal("true", ast.Boolean(true))
	case c == 'f':
		return d.literal("false", ast.Boolean(false))
	case c == 'n':
		return d.literal("null", ast.NullValue)
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, errSlowPath
}

func (d *jsonDecoder) literal(word string, v ast.Value) (ast.Value, error) {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return nil, errSlowPath
	}
	d.pos += len(word)
	return v, nil
}

func (d *jsonDecoder) object() (ast.Value, error) {
	d.pos++ // {
	var items objectItems
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return ast.NewObject(), nil
	}
	for {
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return nil, errSlowPath
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.space()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return nil, errSlowPath
		}
		d.pos++
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		// As in a Go map, a repeated key keeps its last value (NewObject
		// does not check for repeats).
		items.add(k, v)
		d.space()
		if d.pos >= len(d.data) {
			return nil, errSlowPath
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return ast.NewObject(items.items...), nil
		default:
			return nil, errSlowPath
		}
	}
}

// objectItems collects an object's items. As in a Go map, a repeated key
// keeps its last value (ast.NewObject does not check for repeats). Small
// objects are searched linearly; larger ones get an index.
type objectItems struct {
	items [][2]*ast.Term
	index map[string]int
}

const objectIndexAt = 16

func (o *objectItems) add(k string, v ast.Value) {
	if o.index != nil {
		if i, ok := o.index[k]; ok {
			o.items[i][1] = ast.NewTerm(v)
			return
		}
		o.index[k] = len(o.items)
	} else {
		for i := range o.items {
			if string(o.items[i][0].Value.(ast.String)) == k {
				o.items[i][1] = ast.NewTerm(v)
				return
			}
		}
		if len(o.items) == objectIndexAt {
			o.index = make(map[string]int, 2*objectIndexAt)
			for i, it := range o.items {
				o.index[string(it[0].Value.(ast.String))] = i
			}
			o.index[k] = len(o.items)
		}
	}
	o.items = append(o.items, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(v)})
}

func (d *jsonDecoder) array() (ast.Value, error) {
	d.pos++ // [
	var terms []*ast.Term
	d.space()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return ast.NewArray(), nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		terms = append(terms, ast.NewTerm(v))
		d.space()
		if d.pos >= len(d.data) {
			return nil, errSlowPath
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return ast.NewArray(terms...), nil
		default:
			return nil, errSlowPath
		}
	}
}

// str decodes a string. Strings with escapes or bytes that are not valid
// UTF-8 are decoded by encoding/json, which has the last word on them.
func (d *jsonDecoder) str() (string, error) {
	start := d.pos
	d.pos++ // "
	simple := true
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			body := d.data[start+1 : d.pos-1]
			if simple && utf8.Valid(body) {
				return string(body), nil
			}
			var s string
			if err := json.Unmarshal(d.data[start:d.pos], &s); err != nil {
				return "", errSlowPath
			}
			return s, nil
		case c == '\\':
			simple = false
			d.pos += 2
		case c < 0x20:
			return "", errSlowPath
		default:
			d.pos++
		}
	}
	return "", errSlowPath
}

// number decodes a number as encoding/json does into an any
// (a float64), then as ast.InterfaceToValue converts a float64.
func (d *jsonDecoder) number() (ast.Value, error) {
	start := d.pos
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.pos++
			continue
		}
		break
	}
	lit := string(d.data[start:d.pos])
	if !validNumber(lit) {
		return nil, errSlowPath
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return nil, errSlowPath
	}
	return floatNumber(f), nil
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

// ReviewValue is input.review as Query makes it from a review and the
// namespace object (reviews.Namespace).
func ReviewValue(review any, namespace map[string]any) (ast.Value, error) {
	t, err := reviewTerm(review, namespace)
	if err != nil {
		return nil, err
	}
	return t.Value, nil
}
