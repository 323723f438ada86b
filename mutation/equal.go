package mutation

import (
	"math"
)

// equalJSON compares two values of decoded JSON (maps, lists, strings,
// booleans, nil and numbers), a whole float64 equal to the int64 of the
// same value.
func equalJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case int64, float64, int, int32:
		fa, oka := number(a)
		fb, okb := number(b)
		return oka && okb && fa == fb
	default:
		return a == b
	}
}

// number returns a number as a float64, exact for whole values up to 2^53.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case float64:
		if math.IsNaN(n) {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// equalKey compares a list element's key field with a selector's key
// value (a string or an int64).
func equalKey(elem, want any) bool {
	if s, ok := want.(string); ok {
		e, ok := elem.(string)
		return ok && e == s
	}
	return equalJSON(elem, want)
}
