package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRegister: the first collector of a name is registered; a second of
// the same name and type gets the first back; one of another type, or
// whose labels differ, is an error.
func TestRegister(t *testing.T) {
	r := prometheus.NewRegistry()
	opts := prometheus.GaugeOpts{Name: "portcullis_test_gauge", Help: "A test gauge."}
	first := prometheus.NewGaugeVec(opts, []string{"status"})
	got, err := Register(r, first)
	if err != nil || got != first {
		t.Fatalf("first: %v, %v", got, err)
	}
	got, err = Register(r, prometheus.NewGaugeVec(opts, []string{"status"}))
	if err != nil || got != first {
		t.Errorf("second of the same name: %v, %v; want the first", got, err)
	}
	if _, err := Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_test_gauge", Help: "A test gauge."}, []string{"status"})); err == nil {
		t.Error("a counter of the gauge's name was registered")
	}
	if _, err := Register(r, prometheus.NewGaugeVec(opts, []string{"other"})); err == nil {
		t.Error("a gauge of the same name with other labels was registered")
	}
}
