package audit

import (
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/portcullis-dev/portcullis/audit/policyreport"
)

// Report is what one audit run did, for the run's log line, the metrics
// and tests.
type Report struct {
	// Start and End bound the run; Start is every written auditTimestamp.
	Start, End time.Time

	// Resources are the kinds listed, in order.
	Resources []ResourceReport

	// ObjectsListed counts the objects listed; each was reviewed, skipped
	// (ObjectsExempt: in an exempt namespace, or one the Config excludes
	// from the audit), or failed to review.
	ObjectsListed   int
	ObjectsReviewed int
	ObjectsExempt   int

	// Violations counts the violations found by this run, over the
	// audited constraints; ViolationsByAction counts them by the actions
	// that apply at the audit (a scoped violation counts once per action).
	Violations         int
	ViolationsByAction map[string]int

	// Constraints are the constraints that existed when the run started.
	Constraints []ConstraintReport

	// StatusWrites counts the constraint statuses written.
	StatusWrites int

	// ListErrors counts the kinds (or, when discovery failed, the API
	// groups) not listed completely; ReviewErrors the objects the engine
	// failed to review, or to expand (their own violations still count);
	// StatusErrors the statuses not written.
	ListErrors   int
	ReviewErrors int
	StatusErrors int
	// NamespaceErrors counts the Namespaces that could not be read (other
	// than not found): their objects were reviewed without them, and
	// their reports left as they were.
	NamespaceErrors int

	// Reports are what the run did with the reports (Options.Reports):
	// written only by a run that completed. Reports.Errors also counts a
	// run whose reports could not be written at all.
	Reports policyreport.Stats
	// ReportSpilled counts the bytes of results held on disk until the
	// reports were written.
	ReportSpilled int64

	// series are the violations by constraint, action and namespace, for
	// portcullis_audit_violations.
	series map[seriesKey]int
}

// Duration is how long the run took.
func (r *Report) Duration() time.Duration { return r.End.Sub(r.Start) }

// Resource returns the report of a listed resource, or nil.
func (r *Report) Resource(gvr schema.GroupVersionResource) *ResourceReport {
	for i := range r.Resources {
		if r.Resources[i].Resource == gvr {
			return &r.Resources[i]
		}
	}
	return nil
}

// Constraint returns the report of a constraint, or nil.
func (r *Report) Constraint(kind, name string) *ConstraintReport {
	for i := range r.Constraints {
		if r.Constraints[i].Kind == kind && r.Constraints[i].Name == name {
			return &r.Constraints[i]
		}
	}
	return nil
}

// ResourceReport is the listing of one kind.
type ResourceReport struct {
	Resource schema.GroupVersionResource
	Kind     string
	// Objects counts the objects listed, over Pages pages.
	Objects int
	Pages   int
	// Err is why the kind was not listed completely; nil when it was.
	Err error
}

// ConstraintReport is the outcome of one constraint.
type ConstraintReport struct {
	Kind, Name string
	// Found counts the violations this run found; TotalViolations is what
	// the status holds, which keeps earlier findings for kinds that failed
	// to list.
	Found           int
	TotalViolations int
	// Written tells whether the status was written; with StatusOnChange,
	// an unchanged status is not.
	Written bool
	// Skipped tells why the constraint was not audited, if it was not:
	// its template is not loaded, or it was deleted during the run.
	Skipped string
	// Err is why its status could not be written.
	Err error
}
