package regodriver

import (
	"fmt"
	"sort"

	clienterrors "github.com/open-policy-agent/frameworks/constraint/pkg/client/errors"
	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/portcullis-dev/portcullis/internal/resultcache"
)

// Option configures a Driver.
type Option func(*Driver) error

// externFields are the data documents a template may read besides its libs.
var externFields = map[string]bool{"inventory": true}

// Tracing records an evaluation trace on every Query when enabled. When
// disabled, reviews.Tracing(true) still traces a single Query.
func Tracing(enabled bool) Option {
	return func(d *Driver) error {
		d.traceEnabled = enabled
		return nil
	}
}

// DisableBuiltins removes builtins from the capabilities templates compile
// against, so a template calling one of them fails to compile.
func DisableBuiltins(names ...string) Option {
	return func(d *Driver) error {
		for _, n := range names {
			d.disabled[n] = true
		}
		return nil
	}
}

// Externs sets the data documents templates may reference besides data.lib:
// only "inventory" is valid. Without this option data.inventory is allowed;
// Externs() with no fields forbids it.
func Externs(fields ...string) Option {
	return func(d *Driver) error {
		out := make([]string, 0, len(fields))
		for _, f := range fields {
			if !externFields[f] {
				valid := make([]string, 0, len(externFields))
				for k := range externFields {
					valid = append(valid, k)
				}
				sort.Strings(valid)
				return fmt.Errorf("%w: invalid data field %q; allowed fields are: %v",
					clienterrors.ErrCreatingDriver, f, valid)
			}
			out = append(out, "data."+f)
		}
		d.externs = out
		return nil
	}
}

// GatherStats makes every Query report per-template stats, as if
// reviews.Stats(true) were passed.
func GatherStats() Option {
	return func(d *Driver) error {
		d.gatherStats = true
		return nil
	}
}

// capabilitiesWithout is this OPA's capabilities minus the disabled builtins.
func capabilitiesWithout(disabled map[string]bool) *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	if len(disabled) == 0 {
		return caps
	}
	kept := make([]*ast.Builtin, 0, len(caps.Builtins))
	for _, b := range caps.Builtins {
		if !disabled[b.Name] {
			kept = append(kept, b)
		}
	}
	caps.Builtins = kept
	return caps
}

// DefaultCacheSize is how many results the result cache holds by default.
// An entry is a key and a violation set, most of them empty: a few hundred
// bytes.
const DefaultCacheSize = 4096

// CacheSize sets how many results the result cache holds; 0 turns it off.
func CacheSize(n int) Option {
	return func(d *Driver) error {
		if n < 0 {
			return fmt.Errorf("%w: negative result cache size %d", clienterrors.ErrCreatingDriver, n)
		}
		d.cache = resultcache.New[*outcome](n)
		return nil
	}
}
