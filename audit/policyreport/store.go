package policyreport

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
)

// store holds encoded results per namespace: in memory up to a budget,
// beyond it in blocks appended to a spill file, an unlinked temporary file
// that goes away with the process. What is held in memory is thus bounded
// by the budget plus the buffers of the goroutines adding, however many
// results a run finds; each namespace is read back whole when its reports
// are built.
type store struct {
	mu     sync.Mutex
	file   *os.File // nil: everything in memory
	size   int64    // bytes written to file
	held   int      // bytes in memory
	budget int
	ns     map[string]*nsData
	err    error
}

// nsData are one namespace's results: blocks in the file, then buf.
type nsData struct {
	blocks []block
	buf    []byte
}

type block struct {
	off int64
	n   int
}

// newStore creates the spill file in the first writable dir; with none
// (or no dirs), the store holds everything in memory and the error says
// why.
func newStore(dirs []string, budget int) (*store, error) {
	s := &store{budget: budget, ns: map[string]*nsData{}}
	var errs []error
	for _, dir := range dirs {
		f, err := os.CreateTemp(dir, "portcullis-audit-results-")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Unlinked at once: the file lives as long as it is open.
		if err := os.Remove(f.Name()); err != nil {
			_ = f.Close()
			errs = append(errs, err)
			continue
		}
		s.file = f
		return s, nil
	}
	if len(dirs) == 0 {
		return s, nil
	}
	return s, fmt.Errorf("no spill file for the audit's results, which are held in memory: %w", errors.Join(errs...))
}

// append adds encoded results by namespace, spilling everything held once
// the budget is passed.
func (s *store) append(byNS map[string][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ns, data := range byNS {
		if len(data) == 0 {
			continue
		}
		d := s.ns[ns]
		if d == nil {
			d = &nsData{}
			s.ns[ns] = d
		}
		d.buf = append(d.buf, data...)
		s.held += len(data)
	}
	if s.held > s.budget && s.file != nil && s.err == nil {
		s.spill()
	}
}

// spill writes every namespace's buffer to the file as a block. Callers
// hold mu.
func (s *store) spill() {
	for _, d := range s.ns {
		if len(d.buf) == 0 {
			continue
		}
		if _, err := s.file.WriteAt(d.buf, s.size); err != nil {
			s.err = fmt.Errorf("spilling the audit's results: %w", err)
			return
		}
		d.blocks = append(d.blocks, block{off: s.size, n: len(d.buf)})
		s.size += int64(len(d.buf))
		s.held -= len(d.buf)
		d.buf = nil
	}
}

// read returns every encoded result of a namespace.
func (s *store) read(ns string) ([]byte, error) { return s.readInto(ns, nil) }

// readInto appends every encoded result of a namespace to out, which it
// grows if needed.
func (s *store) readInto(ns string, out []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return out, s.err
	}
	d := s.ns[ns]
	if d == nil {
		return out, nil
	}
	total := len(d.buf)
	for _, b := range d.blocks {
		total += b.n
	}
	out = slices.Grow(out, total)
	for _, b := range d.blocks {
		n := len(out)
		out = out[:n+b.n]
		if _, err := s.file.ReadAt(out[n:], b.off); err != nil {
			return out, fmt.Errorf("reading back the audit's results: %w", err)
		}
	}
	return append(out, d.buf...), nil
}

func (s *store) namespaces() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.ns))
	for ns := range s.ns {
		out = append(out, ns)
	}
	slices.Sort(out)
	return out
}

func (s *store) spilled() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

func (s *store) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ns = nil
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}
