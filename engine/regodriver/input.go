package regodriver

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

var (
	reviewKey          = ast.StringTerm("review")
	parametersKey      = ast.StringTerm("parameters")
	namespaceObjectKey = ast.StringTerm("namespaceObject")
)

// reviewTerm converts a review to the AST value templates see as
// input.review, with namespaceObject added. The review goes through JSON
// once; the value is what json.Unmarshal into a map followed by
// ast.InterfaceToValue gives (as with the frameworks driver), numbers
// included: they are float64s, so 1000000 prints as 1e+06.
func reviewTerm(review interface{}, namespace map[string]interface{}) (*ast.Term, error) {
	raw, err := json.Marshal(review)
	if err != nil {
		return nil, fmt.Errorf("encoding review: %w", err)
	}
	ns, err := ast.InterfaceToValue(namespace)
	if err != nil {
		return nil, fmt.Errorf("converting namespace: %w", err)
	}
	if v, ok := decodeObject(raw); ok {
		v.Insert(namespaceObjectKey, ast.NewTerm(ns))
		return ast.NewTerm(v), nil
	}
	// Not a plain JSON object, or something the fast decoder leaves to
	// encoding/json: decode as the frameworks driver does, errors included.
	m := map[string]interface{}{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decoding review: %w", err)
	}
	if m == nil {
		// A null review; the frameworks driver would panic here.
		m = map[string]interface{}{}
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

// number decodes a number as encoding/json does into an interface{}
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
	return ast.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
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
