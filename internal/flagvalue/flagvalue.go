// Package flagvalue holds pflag values that read Gatekeeper's value formats.
package flagvalue

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Seconds is a duration flag that reads whole seconds, as Gatekeeper's
// --audit-interval and --shutdown-delay do ("60"), or a Go duration
// ("1m", "500ms"). A negative value is refused.
type Seconds struct{ d *time.Duration }

var _ pflag.Value = Seconds{}

// NewSeconds returns a Seconds value writing to d.
func NewSeconds(d *time.Duration) Seconds { return Seconds{d: d} }

// String prints whole seconds as a number, like Gatekeeper, else a duration.
func (s Seconds) String() string {
	if s.d == nil {
		return ""
	}
	if *s.d%time.Second == 0 {
		return strconv.FormatInt(int64(*s.d/time.Second), 10)
	}
	return s.d.String()
}

// Set reads whole seconds or a Go duration.
func (s Seconds) Set(v string) error {
	d, err := ParseSeconds(v)
	if err != nil {
		return err
	}
	*s.d = d
	return nil
}

// Type names the value in --help.
func (Seconds) Type() string { return "seconds" }

// ParseSeconds reads whole seconds ("60") or a Go duration ("1m").
func ParseSeconds(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("%s seconds is out of range", v)
		}
		d = time.Duration(n) * time.Second
	} else {
		d, err = time.ParseDuration(v)
		if err != nil {
			return 0, fmt.Errorf("%q is neither whole seconds (60) nor a duration (1m30s)", v)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("%s must not be negative", v)
	}
	return d, nil
}

// Choice is a repeatable flag whose values, each also a comma-separated
// list as Gatekeeper accepts, must be one of a fixed set. Values are kept
// in the order given, without repeats.
type Choice struct {
	values  *[]string
	valid   []string
	fold    bool // compare case-insensitively, keep the lowercase form
	explain func(string) error
}

var _ pflag.SliceValue = &Choice{}

// NewChoice returns a Choice writing to values. With fold, "Prometheus"
// is read as "prometheus". explain, if not nil, may say better why a value
// is refused (a known value that is not supported, say); its nil falls back
// to listing the valid ones.
func NewChoice(values *[]string, valid []string, fold bool, explain func(string) error) *Choice {
	return &Choice{values: values, valid: valid, fold: fold, explain: explain}
}

// String prints the values as Gatekeeper's flag does, comma-separated.
func (c *Choice) String() string {
	if c.values == nil {
		return ""
	}
	return strings.Join(*c.values, ",")
}

// Set adds one value or a comma-separated list.
func (c *Choice) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		p := strings.TrimSpace(part)
		if c.fold {
			p = strings.ToLower(p)
		}
		if !slices.Contains(c.valid, p) {
			if c.explain != nil {
				if err := c.explain(p); err != nil {
					return err
				}
			}
			return fmt.Errorf("%q is not one of %s", part, strings.Join(c.valid, ", "))
		}
		if !slices.Contains(*c.values, p) {
			*c.values = append(*c.values, p)
		}
	}
	return nil
}

// Type names the value in --help.
func (*Choice) Type() string { return "strings" }

// Append adds a value (pflag.SliceValue).
func (c *Choice) Append(v string) error { return c.Set(v) }

// Replace replaces the values (pflag.SliceValue).
func (c *Choice) Replace(vs []string) error {
	*c.values = nil
	for _, v := range vs {
		if err := c.Set(v); err != nil {
			return err
		}
	}
	return nil
}

// GetSlice returns the values (pflag.SliceValue).
func (c *Choice) GetSlice() []string { return append([]string(nil), *c.values...) }
