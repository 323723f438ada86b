package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// reviewSlots bounds the reviews running at once (--max-serving-threads).
// A request that would wait for a slot longer than its own deadline, as
// estimated from the requests waiting and the average review time, is
// turned away at once with 503: it would time out anyway, and answering
// now spares the API server the wait and this process the memory of a
// queue that cannot drain in time. Nothing here takes a lock.
type reviewSlots struct {
	ch      chan struct{}
	waiting atomic.Int64
	avg     atomic.Int64 // moving average of review time, in ns
}

func newReviewSlots(n int) *reviewSlots {
	if n <= 0 {
		return nil
	}
	return &reviewSlots{ch: make(chan struct{}, n)}
}

// acquire waits for a slot until ctx ends; release gives it back.
func (s *reviewSlots) acquire(ctx context.Context) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	select {
	case s.ch <- struct{}{}:
		return s.release(time.Now()), nil
	default:
	}
	w := s.waiting.Add(1)
	defer s.waiting.Add(-1)
	if deadline, ok := ctx.Deadline(); ok {
		budget := time.Until(deadline)
		if ahead := time.Duration(w * s.avg.Load() / int64(cap(s.ch))); ahead > budget {
			return nil, &httpError{code: http.StatusServiceUnavailable, err: fmt.Errorf(
				"overloaded: %d reviews waiting for %d slots (--max-serving-threads), about %s of work ahead, more than the %s left",
				w-1, cap(s.ch), ahead.Round(time.Millisecond), budget.Round(time.Millisecond))}
		}
	}
	select {
	case s.ch <- struct{}{}:
		return s.release(time.Now()), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no review slot free in time (--max-serving-threads %d): %w", cap(s.ch), ctx.Err())
	}
}

func (s *reviewSlots) release(start time.Time) func() {
	return func() {
		d := int64(time.Since(start))
		// An exponential moving average; a lost update under contention
		// only delays it.
		old := s.avg.Load()
		if old == 0 {
			s.avg.Store(d)
		} else {
			s.avg.Store(old + (d-old)/8)
		}
		<-s.ch
	}
}
