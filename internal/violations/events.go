package violations

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
)

// Event sources, Gatekeeper's, so that Event queries written for it match.
const (
	ComponentWebhook = "gatekeeper-webhook"
	ComponentAudit   = "gatekeeper-audit"
)

// Event reasons, Gatekeeper's.
const (
	ReasonFailedAdmission  = "FailedAdmission"
	ReasonWarningAdmission = "WarningAdmission"
	ReasonDryrunViolation  = "DryrunViolation"
	ReasonAuditViolation   = "AuditViolation"
)

// The enforcement actions whose admission Events differ.
const (
	actionDryrun = "dryrun"
	actionWarn   = "warn"
)

// Recorder emits violations as Warning Events through client-go's event
// recorder, which rate-limits and aggregates repeated Events as it does
// for Gatekeeper. Start it with the manager (it stops the recording when
// the manager stops). A nil *Recorder emits nothing.
type Recorder struct {
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder
	// namespace is the manager's: Events go there, unless involved.
	namespace string
	// involved puts each Event in the namespace of the object it is
	// about (--admission-events-involved-namespace,
	// --audit-events-involved-namespace); cluster-scoped objects' Events
	// stay in namespace.
	involved bool
}

// NewRecorder starts recording Events from component (ComponentWebhook or
// ComponentAudit) through the API server at cfg.
func NewRecorder(cfg *rest.Config, component, namespace string, involvedNamespace bool) (*Recorder, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating the %s event client: %w", component, err)
	}
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	return &Recorder{
		broadcaster: b,
		recorder:    b.NewRecorder(clientgoscheme.Scheme, corev1.EventSource{Component: component}),
		namespace:   namespace,
		involved:    involvedNamespace,
	}, nil
}

// NeedLeaderElection is false: every replica emits its own Events.
func (r *Recorder) NeedLeaderElection() bool { return false }

// Start waits for ctx to end, then stops the recording.
func (r *Recorder) Start(ctx context.Context) error {
	<-ctx.Done()
	r.broadcaster.Shutdown()
	return nil
}

// Admission emits one Event per action the violation takes at admission,
// with Gatekeeper's reasons and messages.
func (r *Recorder) Admission(v *Violation) {
	if r == nil {
		return
	}
	annotations := v.annotations(ProcessAdmission, EventViolation)
	_, cname, _ := v.constraint()
	for _, action := range v.Actions() {
		var msg, reason string
		switch action {
		case actionDryrun:
			msg, reason = "Dryrun violation", ReasonDryrunViolation
		case actionWarn:
			msg, reason = `Admission webhook "validation.gatekeeper.sh" raised a warning for this request`, ReasonWarningAdmission
		default:
			msg, reason = `Admission webhook "validation.gatekeeper.sh" denied request`, ReasonFailedAdmission
		}
		ref := r.ref(v)
		if r.involved {
			r.recorder.AnnotatedEventf(ref, annotations, corev1.EventTypeWarning, reason,
				"%s, Constraint: %s, Message: %s", msg, cname, v.Message)
		} else {
			r.recorder.AnnotatedEventf(ref, annotations, corev1.EventTypeWarning, reason,
				"%s, Resource Namespace: %s, Constraint: %s, Message: %s", msg, v.Namespace, cname, v.Message)
		}
	}
}

// Audit emits the Event of a violation found by the audit run of
// auditTimestamp.
func (r *Recorder) Audit(v *Violation, auditTimestamp string) {
	if r == nil {
		return
	}
	annotations := v.annotations(ProcessAudit, EventViolationAudited)
	annotations["auditTimestamp"] = auditTimestamp
	_, cname, _ := v.constraint()
	ref := r.ref(v)
	if r.involved {
		r.recorder.AnnotatedEventf(ref, annotations, corev1.EventTypeWarning, ReasonAuditViolation,
			"Constraint: %s, Message: %s", cname, v.Message)
	} else {
		r.recorder.AnnotatedEventf(ref, annotations, corev1.EventTypeWarning, ReasonAuditViolation,
			"Resource Namespace: %s, Constraint: %s, Message: %s", v.Namespace, cname, v.Message)
	}
}

// ref is the Event's involved object, as Gatekeeper builds it: in the
// manager's namespace, with a UID naming the object and the constraint (so
// that each pair is rate-limited and aggregated apart); with involved, in
// the object's namespace with its UID and resourceVersion when known.
func (r *Recorder) ref(v *Violation) *corev1.ObjectReference {
	ref := &corev1.ObjectReference{Kind: v.Resource.Kind, Name: v.Name, Namespace: r.namespace}
	if !r.involved {
		ckind, cname, cns := "", "", ""
		if v.Constraint != nil {
			ckind, cname, cns = v.Constraint.GetKind(), v.Constraint.GetName(), v.Constraint.GetNamespace()
		}
		ref.UID = types.UID(v.Resource.Kind + "/" + v.Namespace + "/" + v.Name + "/" + ckind + "/" + cns + "/" + cname)
		return ref
	}
	if v.Namespace != "" {
		ref.Namespace = v.Namespace
	}
	if v.UID != "" && v.ResourceVersion != "" {
		ref.UID, ref.ResourceVersion = v.UID, v.ResourceVersion
	}
	return ref
}
