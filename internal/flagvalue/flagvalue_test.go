package flagvalue

import (
	"slices"
	"testing"
	"time"
)

func TestSeconds(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"60": time.Minute, "0": 0, "5": 5 * time.Second, "1m30s": 90 * time.Second, "500ms": 500 * time.Millisecond,
	} {
		var d time.Duration
		if err := NewSeconds(&d).Set(in); err != nil || d != want {
			t.Errorf("Set(%q) = %s, %v; want %s", in, d, err, want)
		}
	}
	for _, in := range []string{"-1", "-1s", "sixty", "", "1.5", "99999999999999999"} {
		var d time.Duration
		if err := NewSeconds(&d).Set(in); err == nil {
			t.Errorf("Set(%q) = %s, want an error", in, d)
		}
	}
	d := time.Minute
	if s := NewSeconds(&d).String(); s != "60" {
		t.Errorf("String() = %q, want 60", s)
	}
	d = 1500 * time.Millisecond
	if s := NewSeconds(&d).String(); s != "1.5s" {
		t.Errorf("String() = %q, want 1.5s", s)
	}
}

func TestChoice(t *testing.T) {
	var got []string
	c := NewChoice(&got, []string{"a", "b", "c"}, true, nil)
	for _, v := range []string{"b", "A,c", "b"} {
		if err := c.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	if !slices.Equal(got, []string{"b", "a", "c"}) || c.String() != "b,a,c" {
		t.Errorf("values %v, String %q", got, c.String())
	}
	if err := c.Set("d"); err == nil {
		t.Error("Set(d) accepted")
	}
	if err := c.Replace([]string{"c"}); err != nil || !slices.Equal(c.GetSlice(), []string{"c"}) {
		t.Errorf("Replace: %v, %v", err, c.GetSlice())
	}
}
